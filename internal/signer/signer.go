// Package signer makes and checks the server's signed tokens: the viewer
// cookie (chat identity), the buyer cookie (per-buyer limits, reading one's
// own orders) and private-stream viewer links. One HMAC key signs them all;
// each token names its purpose, so a token made for one job is refused by
// every other (a viewer cookie is not a stream link).
//
// The key lives in the data directory (one node) or in Redis (a cluster, so
// that a cookie set by one node is accepted by the others).
package signer

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors from Verify.
var (
	ErrInvalid = errors.New("signer: invalid token")
	ErrExpired = errors.New("signer: token expired")
)

// Signer signs and verifies tokens of the form
// base64url(payload) "." expiry-unix "." base64url(hmac).
type Signer struct{ key []byte }

// New returns a signer using key (at least 32 bytes).
func New(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("signer: key of %d bytes, need 32", len(key))
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// Sign returns a token carrying payload for purpose, valid until exp.
func (s *Signer) Sign(purpose string, payload []byte, exp time.Time) string {
	p := base64.RawURLEncoding.EncodeToString(payload)
	e := strconv.FormatInt(exp.Unix(), 10)
	return p + "." + e + "." + base64.RawURLEncoding.EncodeToString(s.mac(purpose, p, e))
}

// Verify checks token for purpose at now and returns its payload.
func (s *Signer) Verify(purpose, token string, now time.Time) ([]byte, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrInvalid
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.mac(purpose, parts[0], parts[1])) {
		return nil, ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, ErrInvalid
	}
	if now.Unix() >= exp {
		return nil, ErrExpired
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, ErrInvalid
	}
	return payload, nil
}

func (s *Signer) mac(purpose, payload, exp string) []byte {
	m := hmac.New(sha256.New, s.key)
	// The purpose is length-prefixed so "a"+"b.c" never equals "a.b"+"c".
	m.Write([]byte(strconv.Itoa(len(purpose)) + ":" + purpose + "|" + payload + "|" + exp))
	return m.Sum(nil)
}

// RandomID returns n random bytes, hex-encoded (ids for viewers and buyers).
func RandomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LoadOrCreateKey reads the key kept at path, creating it (0600) when missing.
func LoadOrCreateKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) >= 32 {
			return k, nil
		}
		return nil, fmt.Errorf("signing key %s is damaged: remove it to make a new one (signed cookies and links are then invalid)", path)
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return k, nil
}

// redisKey is where a cluster keeps its shared signing key.
const redisKey = "streamd:signer:key"

// SharedKey returns the cluster's key from Redis, making it when no node
// has yet (SETNX, so concurrent first starts agree on one key).
func SharedKey(ctx context.Context, rdb *redis.Client) ([]byte, error) {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if err := rdb.SetNX(ctx, redisKey, hex.EncodeToString(k), 0).Err(); err != nil {
		return nil, fmt.Errorf("signing key in redis: %w", err)
	}
	v, err := rdb.Get(ctx, redisKey).Result()
	if err != nil {
		return nil, fmt.Errorf("signing key in redis: %w", err)
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("signing key in redis (%s) is damaged", redisKey)
	}
	return key, nil
}
