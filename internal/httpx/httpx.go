// Package httpx holds the few HTTP helpers every API package of streamd shares:
// JSON responses, the JSON error shape of the public contract, bounded body
// decoding and bearer-token checks. It has no state.
package httpx

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
)

// Error is the body of every error response: {"error": code, "message": text}.
type Error struct {
	Code    string `json:"error"`
	Message string `json:"message"`
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes the contract's error shape. code is a stable machine
// string (e.g. "sold_out"), message tells a person what to do.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, Error{Code: code, Message: message})
}

// WriteErrorExtra writes the error shape plus extra fields (e.g. what is left
// of a sold-out product). extra must not contain "error" or "message".
func WriteErrorExtra(w http.ResponseWriter, status int, code, message string, extra map[string]any) {
	body := make(map[string]any, len(extra)+2)
	for k, v := range extra {
		body[k] = v
	}
	body["error"] = code
	body["message"] = message
	WriteJSON(w, status, body)
}

// ErrBodyTooLarge is returned by DecodeJSON when the body passes the limit.
var ErrBodyTooLarge = errors.New("body too large")

// DecodeJSON reads at most limit bytes of JSON into v, refusing unknown
// fields, trailing data and a non-JSON content type. On failure it has
// already written the error response and returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
		return false
	}
	body, err := ReadBody(r, limit)
	if errors.Is(err, ErrBodyTooLarge) {
		WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body must be at most %d bytes", limit))
		return false
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_body", "could not read the request body")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_json", "malformed JSON: "+err.Error())
		return false
	}
	if dec.More() {
		WriteError(w, http.StatusBadRequest, "bad_json", "malformed JSON: trailing data after the object")
		return false
	}
	return true
}

// ReadBody reads the whole body, failing with ErrBodyTooLarge past limit bytes.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, ErrBodyTooLarge
	}
	return b, nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// TokenEqual compares two secrets in constant time; an empty want never matches.
func TokenEqual(got, want string) bool {
	if want == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// RequireStaff checks the staff bearer token and writes 401 when it is
// missing or wrong. It returns whether the request may go on.
func RequireStaff(w http.ResponseWriter, r *http.Request, staffToken string) bool {
	tok := BearerToken(r)
	if tok == "" {
		WriteUnauthorized(w, false, "send the staff token as Authorization: Bearer <token>")
		return false
	}
	if !TokenEqual(tok, staffToken) {
		WriteUnauthorized(w, true, "the staff token is wrong")
		return false
	}
	return true
}

// WriteUnauthorized writes a 401 with the bearer challenge; wrongToken says
// a token was sent but is not valid (rather than missing).
func WriteUnauthorized(w http.ResponseWriter, wrongToken bool, message string) {
	challenge := `Bearer realm="streamd"`
	if wrongToken {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	WriteError(w, http.StatusUnauthorized, "unauthorized", message)
}

// ErrStoreUnavailable marks an error of a store (bbolt, Redis) that could
// not be reached: the request may well succeed later, so the answer is 503
// with Retry-After, never a 500. Stores wrap it with Unavailable.
var ErrStoreUnavailable = errors.New("store unavailable")

// Unavailable returns err wrapped with ErrStoreUnavailable when it says the
// store could not be reached: a network error (refused, reset, timeout,
// EOF), a deadline, or any error the store's own checks in also recognise
// (e.g. a Redis pool timeout, a closed bbolt file). Other errors (nil
// included) are returned as they are.
func Unavailable(err error, also ...func(error) bool) error {
	if err == nil || errors.Is(err, ErrStoreUnavailable) || !unreachable(err, also) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

func unreachable(err error, also []func(error) bool) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for _, f := range also {
		if f(err) {
			return true
		}
	}
	return false
}

// RetryAfterSeconds is what a 503 store_unavailable asks clients to wait.
const RetryAfterSeconds = 2

// WriteStoreUnavailable writes 503 {"error":"store_unavailable"} with
// Retry-After when err wraps ErrStoreUnavailable and reports whether it did;
// handlers call it before their generic 500.
func WriteStoreUnavailable(w http.ResponseWriter, err error) bool {
	if !errors.Is(err, ErrStoreUnavailable) {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	WriteError(w, http.StatusServiceUnavailable, "store_unavailable",
		"the store is unreachable for a moment: retry after a few seconds (checkouts: with the same Idempotency-Key)")
	return true
}

// Scheme is "https" or "http" as the client reached this server (behind a
// proxy, X-Forwarded-Proto says which).
func Scheme(r *http.Request) string {
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// BaseURL is scheme://host as the client reached this server (behind a
// proxy, X-Forwarded-Proto/Host say how): the base of links the server
// hands out (QR codes, viewer links).
func BaseURL(r *http.Request) string {
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host = h
	}
	return Scheme(r) + "://" + host
}
