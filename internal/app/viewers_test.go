package app

import (
	"context"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

// subscribeViewers subscribes n WHEP viewers to endpoint concurrently and
// fails the test if any of them could not; every viewer that got in is
// closed when the test ends.
func subscribeViewers(ctx context.Context, t *testing.T, api *webrtc.API, endpoint string, n int) []*rtctest.Subscriber {
	t.Helper()
	subs := make([]*rtctest.Subscriber, n)
	t.Cleanup(func() {
		for _, s := range subs {
			if s != nil {
				s.Close()
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range subs {
		wg.Go(func() {
			s, err := rtctest.Subscribe(ctx, api, endpoint)
			if err != nil {
				errs <- err
				return
			}
			subs[i] = s
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("subscribe: %v", err)
	}
	return subs
}
