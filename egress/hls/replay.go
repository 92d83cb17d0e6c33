// Package hls serves HLS: recorded shows as VOD playlists over their fMP4
// segments (replay), and low-latency HLS of live streams (LL-HLS).
package hls

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/streamd/streamd/egress/record"
	"github.com/streamd/streamd/internal/httpx"
)

// Library is where recorded shows are read from (the recorder).
type Library interface {
	Segments(stream, show string) ([]record.Segment, record.Meta, error)
	ShowEvents(stream, show string) ([]record.Event, error)
	File(stream, show, name string) (string, error)
}

// Replay serves recorded shows:
//
//	GET /replay/{stream}/{show}/index.m3u8   HLS VOD (EVENT while the show is still recording)
//	GET /replay/{stream}/{show}/{file}       init and media segments (immutable, byte ranges)
//	GET /replay/{stream}/{show}/events.json  the show's cards, stock and orders on its media timeline
type Replay struct {
	Library Library
	// Access guards every route (private streams); nil lets everyone in.
	Access func(http.Handler) http.Handler
	Logger *slog.Logger
}

// Register mounts the routes.
func (p *Replay) Register(mux *http.ServeMux) {
	wrap := p.Access
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	mux.Handle("GET /replay/{stream}/{show}/index.m3u8", wrap(http.HandlerFunc(p.playlist)))
	mux.Handle("GET /replay/{stream}/{show}/events.json", wrap(http.HandlerFunc(p.events)))
	mux.Handle("GET /replay/{stream}/{show}/{file}", wrap(http.HandlerFunc(p.file)))
}

func (p *Replay) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Replay) notFound(w http.ResponseWriter, err error, what string) {
	if errors.Is(err, record.ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "unknown_show", "no such show: "+what)
		return
	}
	p.log().Error("replay", "err", err)
	httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not read the show; see the server log")
}

// Playlist builds a show's media playlist. Each segment carries its
// EXT-X-PROGRAM-DATE-TIME (the wall clock it was live at); an ended show is a
// VOD playlist (with ENDLIST), one still recording an EVENT playlist.
func Playlist(segs []record.Segment, ended bool) string {
	var b strings.Builder
	target := 1.0
	for _, s := range segs {
		target = math.Max(target, math.Ceil(s.Dur))
	}
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(target))
	if ended {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	} else {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	}
	b.WriteString("#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	init := ""
	for _, s := range segs {
		if s.Init != init {
			if init != "" {
				b.WriteString("#EXT-X-DISCONTINUITY\n")
			}
			init = s.Init
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", init)
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", time.UnixMilli(s.PDT).UTC().Format("2006-01-02T15:04:05.000Z"))
		fmt.Fprintf(&b, "#EXTINF:%.5f,\n%s\n", s.Dur, s.File)
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String()
}

func (p *Replay) playlist(w http.ResponseWriter, r *http.Request) {
	stream, show := r.PathValue("stream"), r.PathValue("show")
	segs, meta, err := p.Library.Segments(stream, show)
	if err != nil {
		p.notFound(w, err, stream+"/"+show)
		return
	}
	ended := meta.EndedAt != nil
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	if ended {
		// A finished show's playlist changes only if the show is deleted.
		w.Header().Set("Cache-Control", "public, max-age=3600")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=1")
	}
	_, _ = w.Write([]byte(Playlist(segs, ended)))
}

func (p *Replay) events(w http.ResponseWriter, r *http.Request) {
	stream, show := r.PathValue("stream"), r.PathValue("show")
	segs, meta, err := p.Library.Segments(stream, show)
	if err != nil {
		p.notFound(w, err, stream+"/"+show)
		return
	}
	evs, err := p.Library.ShowEvents(stream, show)
	if err != nil {
		p.notFound(w, err, stream+"/"+show)
		return
	}
	if evs == nil {
		evs = []record.Event{}
	}
	dur := 0.0
	if n := len(segs); n > 0 {
		dur = segs[n-1].Start + segs[n-1].Dur
	}
	w.Header().Set("Cache-Control", "no-cache")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": meta.ID, "stream": meta.Stream, "started_at": meta.StartedAt,
		"ended_at": meta.EndedAt, "duration_s": dur, "events": evs})
}

func (p *Replay) file(w http.ResponseWriter, r *http.Request) {
	stream, show, name := r.PathValue("stream"), r.PathValue("show"), r.PathValue("file")
	path, err := p.Library.File(stream, show, name)
	if err != nil {
		p.notFound(w, err, name)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		p.notFound(w, record.ErrNotFound, name)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		p.notFound(w, err, name)
		return
	}
	ct := "video/iso.segment"
	if strings.HasSuffix(name, ".mp4") {
		ct = "video/mp4"
	}
	w.Header().Set("Content-Type", ct)
	// Segments never change once listed: a CDN may keep them for good.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	// ServeContent answers Range requests (Accept-Ranges: bytes, 206) and conditional ones.
	http.ServeContent(w, r, "", st.ModTime(), f)
}
