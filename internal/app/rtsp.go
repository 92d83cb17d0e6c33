package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/bluenviron/gortsplib/v4"
	"time"

	"github.com/streamd/streamd/egress"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/streams"
)

// initRTSP wires RTSP: the server on --rtsp (publish with the stream's key,
// read any live stream; empty disables it) and the pull manager, which
// follows the stream records that name an rtsp:// source.
func (a *App) initRTSP() error {
	logger := a.Logger.With("pkg", "rtsp")
	a.RTSPPull = &ingest.RTSPPull{SFU: a.SFU, Registerer: a.reg, Logger: logger}
	a.initClusterPull() // in a cluster, one node pulls a source at a time
	if err := a.RTSPPull.Initialize(); err != nil {
		return err
	}
	a.closers = append(a.closers, a.RTSPPull.Close)

	if a.Config.RTSP != "" {
		readers := rtspReaders{&egress.RTSPReaders{SFU: a.SFU, Logger: logger}}
		a.RTSP = &ingest.RTSPServer{Address: a.Config.RTSP, SFU: a.SFU, Streams: rtspKeys{a.Streams}, Readers: readers, Registerer: a.reg, Logger: logger}
		if err := a.RTSP.Start(); err != nil {
			return rtspFailure(a.Config.RTSP, err)
		}
		a.closers = append(a.closers, a.RTSP.Close)
	}

	a.Streams.Watch(func(r streams.Record, deleted bool) {
		if r.Source == "" {
			return
		}
		if deleted {
			a.RTSPPull.Remove(r.ID)
		} else {
			a.RTSPPull.Set(r.ID, r.Source)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := a.Streams.List(ctx)
	if err != nil {
		return fmt.Errorf("list streams for rtsp pulls: %w", err)
	}
	for _, r := range recs {
		if r.Source != "" {
			a.RTSPPull.Set(r.ID, r.Source)
		}
	}
	if a.cluster != nil {
		// Stopped before the pulls (closers run in reverse).
		a.closers = append(a.closers, every(pullSyncInterval, a.syncPulls))
	}
	return nil
}

// RTSPAddr is the bound RTSP address ("" when RTSP is disabled).
func (a *App) RTSPAddr() string {
	if a.RTSP == nil {
		return ""
	}
	return a.RTSP.Addr()
}

// rtspStatus adds RTSP source state and warnings to a stream's status.
func (a *App) rtspStatus(id string, st *streams.Status) {
	if a.RTSPPull != nil {
		if ps, ok := a.RTSPPull.Status(id); ok {
			st.SourceState, st.SourceError = ps.State, ps.Error
			st.Warnings = append(st.Warnings, ps.Warnings...)
		}
	}
	if a.RTSP != nil {
		st.Warnings = append(st.Warnings, a.RTSP.Warnings(id)...)
	}
}

// rtspKeys adapts the registry to ingest.StreamKeys.
type rtspKeys struct{ reg *streams.Registry }

func (k rtspKeys) StreamKey(ctx context.Context, stream string) (string, bool, error) {
	if !streams.ValidID(stream) {
		return "", false, ingest.ErrUnknownStream
	}
	rec, err := k.reg.Get(ctx, stream)
	if errors.Is(err, streams.ErrNotFound) {
		return "", false, ingest.ErrUnknownStream
	}
	if err != nil {
		return "", false, err
	}
	return rec.PublishKey, rec.Private, nil
}

// rtspReaders adapts egress's RTSP readers to the RTSP server's Readers.
type rtspReaders struct{ *egress.RTSPReaders }

func (r rtspReaders) Open(ss *gortsplib.ServerSession, id string, st *gortsplib.ServerStream) ingest.Reader {
	return r.RTSPReaders.Open(ss, id, st)
}
