package app

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/streamd/streamd/images"
)

// initImages serves uploaded product photos: from the data dir on one
// node, from Redis in a cluster (every node serves every photo; 512 KiB
// cap per stored image — a resized photo is 30–120 KB).
func (a *App) initImages() {
	var st images.Store = images.DirStore{Dir: filepath.Join(a.Config.Data, "images")}
	if a.rdb != nil {
		st = images.RedisStore{C: a.rdb}
	}
	a.Images = &images.Server{Store: st, StaffToken: a.Config.StaffToken, Logger: a.Logger.With("pkg", "images")}
}

// catalogNotifier tells open consoles and players that products changed
// (created, edited, archived, imported): one "catalog" event per stream
// per burst, {"product_ids":[...]} (or {"all":true} after a large import),
// and the card on screen is re-sent when its product changed. It runs on
// its own goroutine so an import of many products is one event, not many.
type catalogNotifier struct {
	a     *App
	mu    sync.Mutex
	dirty map[string]struct{}
	wake  chan struct{}
	stop  context.CancelFunc
	done  chan struct{}
}

func (a *App) startCatalogNotifier() *catalogNotifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &catalogNotifier{a: a, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go n.loop(ctx)
	a.closers = append(a.closers, func() { n.stop(); <-n.done })
	return n
}

// ProductChanged implements cart.ProductNotifier; it never blocks.
func (n *catalogNotifier) ProductChanged(id string) {
	n.mu.Lock()
	n.dirty[id] = struct{}{}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *catalogNotifier) loop(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		// Let a burst (an import) gather into one event.
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		n.mu.Lock()
		ids := make([]string, 0, len(n.dirty))
		for id := range n.dirty {
			ids = append(ids, id)
		}
		n.dirty = map[string]struct{}{}
		n.mu.Unlock()
		slices.Sort(ids)
		n.publish(ctx, ids)
	}
}

func (n *catalogNotifier) publish(ctx context.Context, ids []string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ov := n.a.Overlay
	streams, err := ov.Bus.Streams(ctx)
	if err != nil {
		n.a.Logger.Warn("catalog event: list streams", "err", err)
		return
	}
	payload := map[string]any{"product_ids": ids}
	if len(ids) > 100 {
		payload = map[string]any{"all": true}
	}
	b, _ := json.Marshal(payload)
	for _, s := range streams {
		if _, err := ov.PublishEvent(ctx, s, "catalog", b); err != nil {
			n.a.Logger.Warn("catalog event", "stream", s, "err", err)
		}
		st, err := ov.Bus.State(ctx, s)
		if err != nil || st.Card == nil || n.a.Showroom == nil {
			continue
		}
		var card struct {
			ProductID string `json:"product_id"`
		}
		if json.Unmarshal(st.Card, &card) == nil && slices.Contains(ids, card.ProductID) {
			if _, err := n.a.Showroom.RefreshCard(ctx, s, st.Card); err != nil {
				n.a.Logger.Warn("catalog: refresh the card on screen", "stream", s, "err", err)
			}
		}
	}
}
