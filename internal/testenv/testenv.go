// Package testenv lets tests find the real services and tools they need
// (Redis, Chromium, ffmpeg, stripe-mock). Missing ones make a test skip on a
// developer machine and fail under CI=true, where nothing may skip.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI, saying what to install.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is required under CI=true: %s", what, install)
	}
	t.Skipf("%s not available (%s)", what, install)
}

// RedisAddr is the Redis server tests use; STREAMD_TEST_REDIS overrides it.
func RedisAddr() string {
	if a := os.Getenv("STREAMD_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Redis returns a client on the given DB number, flushed, closed at cleanup.
func Redis(t testing.TB, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: db})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		Missing(t, "redis at "+RedisAddr(), "apt-get install redis-server and start it (make test does)")
	}
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis db %d: %v", db, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RedisURL returns the URL form of RedisAddr for a DB number (for --redis).
func RedisURL(db int) string {
	return "redis://" + RedisAddr() + "/" + strconv.Itoa(db)
}

// LookPath finds a tool, or skips/fails saying how to install it.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gobin := os.Getenv("GOPATH"); gobin != "" {
		if p := filepath.Join(gobin, "bin", name); fileExists(p) {
			return p
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, "go", "bin", name); fileExists(p) {
			return p
		}
	}
	Missing(t, name, install)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Chromium returns the path of the Chromium binary.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := FindChromium(); p != "" {
		return p
	}
	Missing(t, "chromium", "apt-get install -y chromium")
	return ""
}

// FindChromium returns the first existing file of first, $STREAMD_CHROMIUM,
// Debian's chromium and chromium-browser; "" when there is none. It needs
// no test (the bench uses it).
func FindChromium(first ...string) string {
	for _, p := range slices.Concat(first, []string{os.Getenv("STREAMD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
		if p != "" && fileExists(p) {
			return p
		}
	}
	return ""
}

// FFmpeg returns the path of ffmpeg.
func FFmpeg(t testing.TB) string {
	return LookPath(t, "ffmpeg", "apt-get install -y ffmpeg")
}

// StripeMock returns the path of stripe-mock.
func StripeMock(t testing.TB) string {
	return LookPath(t, "stripe-mock", "go install github.com/stripe/stripe-mock@v0.203.0")
}

// FFprobe returns the path of ffprobe (Debian's ffmpeg package ships it).
func FFprobe(t testing.TB) string {
	return LookPath(t, "ffprobe", "apt-get install -y ffmpeg")
}

// Pebble returns the path of Let's Encrypt's test ACME server.
func Pebble(t testing.TB) string {
	return LookPath(t, "pebble", "go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3")
}
