package signer

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tok := s.Sign("viewer", []byte(`{"id":"v1"}`), now.Add(time.Hour))
	p, err := s.Verify("viewer", tok, now)
	if err != nil || string(p) != `{"id":"v1"}` {
		t.Fatalf("verify: %q %v", p, err)
	}
	if _, err := s.Verify("buyer", tok, now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other purpose: %v", err)
	}
	if _, err := s.Verify("viewer", tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	bad := []byte(tok)
	bad[2] ^= 1
	if _, err := s.Verify("viewer", string(bad), now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tampered: %v", err)
	}
	other, _ := New(make([]byte, 32))
	if _, err := other.Verify("viewer", tok, now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other key: %v", err)
	}
}

func TestKeyKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	a, _ := LoadOrCreateKey(path)
	b, err := LoadOrCreateKey(path)
	if err != nil || string(a) != string(b) {
		t.Fatalf("key not kept: %v", err)
	}
}
