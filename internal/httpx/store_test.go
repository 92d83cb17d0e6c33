package httpx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"testing"
)

func TestUnavailable(t *testing.T) {
	_, refused := net.Dial("tcp", "127.0.0.1:1")
	closed := errors.New("closed")
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("x: %w", closed), false},
		{errors.New("decode: bad json"), false},
		{context.Canceled, false}, // the client went away: not the store's fault
	} {
		if got := errors.Is(Unavailable(c.err), ErrStoreUnavailable); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(Unavailable(closed, func(e error) bool { return errors.Is(e, closed) }), ErrStoreUnavailable) {
		t.Error("a store's own check is not used")
	}
	if Unavailable(nil) != nil {
		t.Error("nil must stay nil")
	}
	w := httptest.NewRecorder()
	if WriteStoreUnavailable(w, errors.New("x")) || w.Code != 200 {
		t.Fatal("wrote a 503 for another error")
	}
	if !WriteStoreUnavailable(w, Unavailable(refused)) || w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("503: %d %v", w.Code, w.Header())
	}
}
