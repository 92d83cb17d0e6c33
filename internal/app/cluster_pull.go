package app

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/streams"
)

// In a cluster one node at a time pulls a stream's rtsp:// source: the one
// holding the stream's pull lease in Redis. It publishes into its sfu and so
// becomes the stream's origin; the other nodes stand by (their viewers get
// the stream through the relay) and take the lease over within a few
// seconds when the holder stops or dies.

// pullLeaseTTL: a dead holder's pull moves to another node after at most
// this plus a retry interval (pullLeaseTTL/5).
const pullLeaseTTL = 5 * time.Second

// pullSyncInterval: how often a node reads the stream records, so that it
// stands by for sources of streams created (and stops for streams deleted)
// on other nodes, which its registry does not hear about.
const pullSyncInterval = 2 * time.Second

func pullKey(stream string) string { return "streamd:pull:" + stream }

// renewLease extends the lease only if it is still ours.
var renewLease = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)

// redisPullLease implements ingest.PullLease; the lease's value is the
// holder's node URL.
type redisPullLease struct {
	c       *redis.Client
	self    string
	ttl     time.Duration
	records streams.Store
}

func (l redisPullLease) Acquire(ctx context.Context, stream string) (bool, error) {
	err := l.c.SetArgs(ctx, pullKey(stream), l.self, redis.SetArgs{Mode: "NX", TTL: l.ttl}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil // held by someone
	}
	if err != nil {
		return false, err
	}
	// A standby node may not have heard yet that the stream was deleted.
	if _, err := l.records.Get(ctx, stream); err != nil {
		_ = l.Release(ctx, stream)
		if errors.Is(err, streams.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (l redisPullLease) Renew(ctx context.Context, stream string) (bool, error) {
	n, err := renewLease.Run(ctx, l.c, []string{pullKey(stream)}, l.self, l.ttl.Milliseconds()).Int()
	return n == 1, err
}

func (l redisPullLease) Release(ctx context.Context, stream string) error {
	return withdraw.Run(ctx, l.c, []string{pullKey(stream)}, l.self).Err()
}

// initClusterPull makes the pull manager take leases and follow the stream
// records of the whole cluster (call before RTSPPull.Initialize).
func (a *App) initClusterPull() {
	if a.cluster == nil {
		return
	}
	a.RTSPPull.Lease = redisPullLease{c: a.rdb, self: a.Config.NodeURL, ttl: pullLeaseTTL, records: a.Streams.Store}
	a.RTSPPull.LeaseTTL = pullLeaseTTL
}

// syncPulls, run every pullSyncInterval, follows the stream records created
// and deleted on other nodes: it sets the pulls from the records, and a
// stream pulled here whose record is gone is removed (the snapshot of pulls
// is taken before the list, so a stream just created on this node is in the
// list).
func (a *App) syncPulls() {
	pulled := a.RTSPPull.Streams()
	ctx, cancel := context.WithTimeout(context.Background(), pullSyncInterval)
	defer cancel()
	recs, err := a.Streams.List(ctx)
	if err != nil {
		a.Logger.Warn("rtsp pull: list streams", "err", err)
		return
	}
	have := make(map[string]bool, len(recs))
	for _, r := range recs {
		if r.Source != "" {
			have[r.ID] = true
			a.RTSPPull.Set(r.ID, r.Source)
		}
	}
	for _, s := range pulled {
		if !have[s] {
			a.RTSPPull.Remove(s)
		}
	}
}
