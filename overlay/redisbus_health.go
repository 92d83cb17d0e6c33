package overlay

import (
	"context"
	"fmt"
	"time"
)

// Health reports whether the bus can deliver events: a PING sent on its
// subscription connection (which redials it after an outage) is answered
// and the answer reaches the receive loop. A write alone is not enough: to
// a Redis that just died it can still succeed.
func (b *RedisBus) Health(ctx context.Context) error {
	before := b.pongs.Load()
	if err := b.ps.Ping(ctx); err != nil {
		return fmt.Errorf("redis bus subscription: %w", err)
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for b.pongs.Load() == before {
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis bus subscription: no answer to PING: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
