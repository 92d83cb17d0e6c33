package app

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/streamd/streamd/egress/hls"
	"github.com/streamd/streamd/egress/record"
	"github.com/streamd/streamd/overlay"
)

// initRecording wires show recording (when --record) and replay serving:
// the sfu's live changes start and end shows, the overlay bus feeds each
// show's event log.
func (a *App) initRecording() error {
	a.initLiveHLS()
	if !a.Config.Record {
		return nil
	}
	dir := a.Config.RecordDir
	if dir == "" {
		dir = filepath.Join(a.Config.Data, "shows")
	}
	a.Recorder = &record.Recorder{Dir: dir, Keep: a.Config.RecordKeep, ShowGap: a.Config.RecordShowGap,
		Events: busEvents{a.Overlay.Bus}, StaffToken: a.Config.StaffToken, Registerer: a.reg, Logger: a.Logger.With("pkg", "record")}
	if err := a.Recorder.Initialize(); err != nil {
		return err
	}
	// Closed before the sfu (closers run in reverse), so each show's end is its media's end.
	a.closers = append(a.closers, a.Recorder.Close)
	return nil
}

// recordLive is the recorder's part of the sfu's live hook.
func (a *App) recordLive(stream string, live bool) {
	if a.Recorder == nil {
		return
	}
	if !live {
		// No sfu lookup: it would re-create the state of a deleted stream.
		a.Recorder.Live(stream, nil, false)
		return
	}
	a.Recorder.Live(stream, a.SFU.Stream(stream), true)
}

// initLiveHLS serves LL-HLS of live streams (muxed on demand).
func (a *App) initLiveHLS() {
	a.HLS = &hls.Live{Media: liveMedia{a}, Access: a.mediaAccess, Warm: a.warmStream, Logger: a.Logger.With("pkg", "hls")}
	a.HLS.Initialize()
	a.closers = append(a.closers, a.HLS.Close)
}

// warmStream is LL-HLS's way to a stream live on another node of a
// cluster: the relay pulls it (as for a WHEP viewer), and the muxer — an
// sfu sink, which keeps the pull going while requests come — starts once
// it is live here.
func (a *App) warmStream(ctx context.Context, stream string) bool {
	if a.cluster == nil {
		return false
	}
	a.cluster.relay.Kick(stream)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !a.SFU.Live(stream) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// liveMedia adapts the sfu to hls.Media.
type liveMedia struct{ a *App }

func (m liveMedia) LiveSource(stream string) (hls.Source, bool) {
	if !m.a.SFU.Live(stream) {
		return nil, false
	}
	return m.a.SFU.Stream(stream), true
}

func (a *App) recordRoutes(m *http.ServeMux) {
	a.HLS.Register(m)
	if a.Recorder == nil {
		return
	}
	replay := &hls.Replay{Library: a.Recorder, Access: a.mediaAccess, Logger: a.Logger.With("pkg", "replay")}
	if a.cluster == nil || a.cluster.shows == nil {
		a.Recorder.Register(m)
		replay.Register(m)
		return
	}
	// A cluster: any node answers for any show (cluster_shows.go).
	local := http.NewServeMux()
	a.Recorder.Register(local)
	replay.Register(local)
	x := a.cluster.shows
	m.Handle("GET /api/streams/{id}/shows", x.listRoute(local))
	m.Handle("DELETE /api/streams/{id}/shows/{show}", x.showRoute("id", local))
	m.Handle("GET /replay/{stream}/{show}/{file}", x.showRoute("stream", local))
}

// mediaAccess guards /replay and /hls: a private stream's playlists and
// segments need a viewer credential, like its WHEP and overlay socket.
func (a *App) mediaAccess(h http.Handler) http.Handler { return a.Streams.RequireViewer(h) }

// busEvents adapts the overlay bus to the recorder's event feed.
type busEvents struct{ bus overlay.Bus }

func (b busEvents) Subscribe(ctx context.Context, stream string, fn func(typ string, data []byte)) (func(), error) {
	return b.bus.Subscribe(ctx, stream, func(ev overlay.Event) {
		if !ev.Reset {
			fn(ev.Type, ev.Data)
		}
	})
}
