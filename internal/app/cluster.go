package app

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/ingest"
)

// A cluster is several streamd nodes sharing one Redis (--redis) that know
// their own URLs (--node-url). The node a stream is published on announces
// itself as the stream's origin; a node whose viewers watch a stream live
// elsewhere pulls it once over WHEP (ingest.Relay) and fans it out locally.

const originTTL = 15 * time.Second

func originKey(stream string) string { return "streamd:origin:" + stream }

// redisDirectory implements ingest.Directory.
type redisDirectory struct{ c *redis.Client }

func (d redisDirectory) Origin(ctx context.Context, stream string) (string, error) {
	v, err := d.c.Get(ctx, originKey(stream)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// withdraw deletes the origin record only if it is still ours.
var withdraw = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

type cluster struct {
	a     *App
	relay *ingest.Relay
	shows *showIndex // nil without recording
	mu    sync.Mutex
	live  map[string]bool // streams published on this node
}

func (a *App) initCluster() error {
	if a.rdb == nil || a.Config.NodeURL == "" {
		return nil
	}
	c := &cluster{a: a, live: map[string]bool{}}
	c.relay = &ingest.Relay{API: a.net.PublisherAPI(), SFU: a.SFU, Dir: redisDirectory{a.rdb}, Self: a.Config.NodeURL, Logger: a.Logger.With("pkg", "relay"),
		// A short viewer link, signed with the key the nodes share, opens
		// private streams on the origin.
		Credential: func(stream string) string { return a.Streams.SignLink(stream, time.Now().Add(time.Minute)) }}
	if err := c.relay.Initialize(); err != nil {
		return err
	}
	a.cluster = c
	a.WHEP.OnSubscribe = c.relay.Kick
	if a.Recorder != nil {
		c.shows = c.startShowIndex()
		a.Recorder.OnShow = c.shows.add
		a.closers = append(a.closers, c.shows.close)
	}
	stopRefresh := every(originTTL/3, c.refresh)
	a.closers = append(a.closers, func() {
		stopRefresh()
		c.relay.Close()
	})
	return nil
}

// announce records (or withdraws) this node as the origin of a stream.
func (c *cluster) announce(stream string, live bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c.mu.Lock()
	if live {
		c.live[stream] = true
	} else {
		delete(c.live, stream)
	}
	c.mu.Unlock()
	var err error
	if live {
		err = c.setOrigin(ctx, stream)
	} else {
		err = withdraw.Run(ctx, c.a.rdb, []string{originKey(stream)}, c.a.Config.NodeURL).Err()
	}
	if err != nil {
		c.a.Logger.Warn("cluster: origin record", "stream", stream, "err", err)
	}
}

func (c *cluster) setOrigin(ctx context.Context, stream string) error {
	return c.a.rdb.Set(ctx, originKey(stream), c.a.Config.NodeURL, originTTL).Err()
}

// refresh keeps this node's origin records alive while its publishers are.
func (c *cluster) refresh() {
	c.mu.Lock()
	streams := slices.Collect(maps.Keys(c.live))
	c.mu.Unlock()
	for _, s := range streams {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = c.setOrigin(ctx, s)
		cancel()
	}
}

// every calls fn every d, on a goroutine of its own, until the returned
// func is called (it waits for that goroutine to end).
func every(d time.Duration, fn func()) (stop func()) {
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stopc:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() {
		close(stopc)
		<-done
	}
}

// onLive is the sfu's live hook: overlay live events and origin records.
func (a *App) onLive(stream string, live bool) {
	if a.cluster != nil {
		if a.cluster.relay.Pulling(stream) {
			// A pulled stream's origin is elsewhere, and the origin node
			// tells the overlay.
			return
		}
		a.cluster.announce(stream, live)
	}
	a.recordLive(stream, live)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Overlay.SetLive(ctx, stream, live); err != nil {
		a.Logger.Warn("overlay live event", "stream", stream, "err", err)
	}
}
