package overlay

import (
	"context"
	"fmt"
)

// Health reports whether the bus can deliver events: its subscription
// connection answers a PING (which also redials it after an outage) and its
// receive loop has heard from Redis since its last error. Right after Redis
// comes back it may report the old error once, until the PING's reply has
// been received.
func (b *RedisBus) Health(ctx context.Context) error {
	if err := b.ps.Ping(ctx); err != nil {
		return fmt.Errorf("redis bus subscription: %w", err)
	}
	if p := b.recvErr.Load(); p != nil {
		return fmt.Errorf("redis bus subscription: %w", *p)
	}
	return nil
}

func (b *RedisBus) setRecvErr(err error) {
	if err == nil {
		if b.recvErr.Load() != nil {
			b.recvErr.Store(nil)
		}
		return
	}
	b.recvErr.Store(&err)
}
