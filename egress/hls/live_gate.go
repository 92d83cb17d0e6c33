package hls

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/streamd/streamd/internal/httpx"
)

// Why this file exists: gohlslib v2.1.4's Muxer.Close writes a stream's
// "closed" flag without the muxer's mutex after waking every request parked
// on the muxer's condition variable, and those requests read it under the
// mutex: a data race whenever Close meets a parked request. We cannot patch
// or upgrade the library, so our code guarantees two things instead:
//
//  1. No call into the muxer starts once close has begun, and close waits
//     for the calls in flight before Muxer.Close (liveStream.call/close:
//     a closing flag and a WaitGroup, both under liveStream.mu).
//  2. No call into the muxer can park, so (1) never waits long. gohlslib
//     parks in four places, each gated here by waiting in OUR code (woken by
//     the run loop's writes, the request's context, a deadline and close):
//     - index.m3u8 and a plain media playlist park until the stream has
//     content (two segments): we call them only once s.content is set.
//     - a blocking playlist (_HLS_msn/_HLS_part) parks until the part
//     exists: we wait until a snapshot of the playlist shows it (mirroring
//     gohlslib's hasPart, conservatively), then call the muxer WITHOUT
//     those parameters, so its blocking branch is never entered at all.
//     - the preload-hint part parks until it is complete: we wait until the
//     snapshot's preload hint has moved past it.
//
// Every condition above only becomes more true as media is written (segment
// counts and part ids only grow; a segment that expires makes gohlslib
// answer 400 at once, not park), so a state seen in a snapshot still holds
// when the real call runs.

// leadingPlaylist is gohlslib's media playlist of track 1; our video track
// is always first, and index.m3u8 waits for that stream's content.
const leadingPlaylist = "video1_stream.m3u8"

// contentProbe tells, without ever parking, whether the muxer has content.
// gohlslib v2.1.4 (LL-HLS) numbers the first real segment 7, after seven
// gap segments it inserts at the first segment cut. Until that cut the
// stream has no segments, so gohlslib's range check (msn must be at least
// nextSegmentID-(len(segments)-1), which wraps to nextSegmentID+1 = 8)
// answers 400 at once; from the cut on, segment 7 is complete with at least
// one part and the answer is 200 at once. The run loop asks after each write
// (it is the only writer, so nothing changes underneath) until the answer
// is 200, long before segment 7 could expire.
const contentProbe = "_HLS_msn=7&_HLS_part=0"

type verdict int

const (
	vWait verdict = iota
	vReady
	vBad     // 400, as gohlslib would answer
	vMissing // 404: no such playlist or part
	vClosed  // the stream ended while waiting
	vTimeout
)

// mediaState is what a media playlist says about the muxer's state.
type mediaState struct {
	gen      uint64 // liveStream.gen when fetched: current if still equal
	missing  bool
	seq      uint64     // EXT-X-MEDIA-SEQUENCE
	segs     []segState // complete segments (gaps included)
	trailing int        // parts of the segment being written
	nextPart uint64     // the preload hint's part id
	hasHint  bool
	target   time.Duration
}

type segState struct {
	gap   bool
	parts int // -1 when the playlist does not list them
}

// blocking mirrors gohlslib's handling of _HLS_msn/_HLS_part: ready only
// when gohlslib's hasPart would be true. Its quirk is kept: a part index
// past the end of segment msn counts only once segment msn+1 is complete.
func (st *mediaState) blocking(msn, part uint64, current bool) verdict {
	if st.missing {
		return vMissing
	}
	next := st.seq + uint64(len(st.segs)) // gohlslib's nextSegmentID
	switch {
	case msn < st.seq+1: // the oldest listed segment is already out of range there
		return vBad
	case msn > next+1:
		if current {
			return vBad
		}
		return vWait
	case msn == next:
		if part < uint64(st.trailing) {
			return vReady
		}
	case msn < next:
		i := int(msn - st.seq)
		sg := st.segs[i]
		// A complete segment after it means gohlslib finds the part, or part 0
		// of the next segment (every complete segment has at least one part).
		if !sg.gap && (i < len(st.segs)-1 || (sg.parts >= 0 && part < uint64(sg.parts))) {
			return vReady
		}
	}
	return vWait
}

// partFile: parts before the preload hint are complete (or expired): their
// handlers answer at once; the hinted part's handler parks; later ids have
// no handler yet.
func (st *mediaState) partFile(id uint64, current bool) verdict {
	switch {
	case st.missing || !st.hasHint:
		return vMissing
	case id < st.nextPart:
		return vReady
	case id == st.nextPart || !current:
		return vWait
	}
	return vMissing
}

// blockLimit: a blocking request the server cannot answer within three
// target durations gets 503 (draft-pantos-hls-rfc8216bis, 6.2.5.2).
func (st *mediaState) blockLimit() time.Duration {
	return max(3*st.target, 3*time.Second)
}

// contentWait bounds waiting for the first segment, as wait does for the
// muxer itself.
const contentWait = 15 * time.Second

// serveFile answers one HLS request, calling the muxer only when the call
// cannot park (see the top of this file).
func (s *liveStream) serveFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	q := r.URL.Query()
	msn, part := q.Get("_HLS_msn"), q.Get("_HLS_part")
	ctx := r.Context()
	var v verdict
	switch {
	case name == "index.m3u8":
		v = s.await(ctx, leadingPlaylist, func(st *mediaState, _ bool) verdict { return vReady })
	case strings.HasSuffix(name, "_stream.m3u8") && msn == "" && part != "":
		v = vBad // part without msn: gohlslib's answer too
	case strings.HasSuffix(name, "_stream.m3u8") && msn != "":
		msnN, err1 := strconv.ParseUint(msn, 10, 64)
		partN, err2 := uint64(0), error(nil)
		if part != "" {
			partN, err2 = strconv.ParseUint(part, 10, 64)
		}
		if err1 != nil || err2 != nil {
			v = vBad
			break
		}
		v = s.await(ctx, name, func(st *mediaState, current bool) verdict { return st.blocking(msnN, partN, current) })
		if v == vReady {
			// The part is there: the plain playlist is the one gohlslib's
			// blocking branch would produce (it strips _HLS_ parameters from
			// its URIs anyway), and asking for it never parks.
			q.Del("_HLS_msn")
			q.Del("_HLS_part")
			u := *r.URL
			u.RawQuery = q.Encode()
			r2 := *r
			r2.URL = &u
			r = &r2
		}
	case strings.HasSuffix(name, "_stream.m3u8"):
		v = s.await(ctx, name, func(st *mediaState, _ bool) verdict {
			if st.missing {
				return vMissing
			}
			return vReady
		})
	default:
		if pl, id, ok := partName(name); ok {
			v = s.await(ctx, pl, func(st *mediaState, current bool) verdict { return st.partFile(id, current) })
		} else {
			v = vReady // init and segment handlers never park
		}
	}
	switch v {
	case vReady:
		if !s.call(w, r) {
			httpx.WriteError(w, http.StatusNotFound, "not_live", "the stream has ended")
		}
	case vBad:
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "_HLS_msn/_HLS_part name no part this playlist can deliver; reload the playlist")
	case vMissing:
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such HLS file; reload the playlist")
	case vClosed:
		httpx.WriteError(w, http.StatusNotFound, "not_live", "the stream has ended")
	default:
		httpx.WriteError(w, http.StatusServiceUnavailable, "not_ready", "the requested media is not there yet; retry shortly")
	}
}

// partName splits gohlslib's part file name <prefix>_<stream>_part<N>.mp4
// into the stream's media playlist and the part id.
func partName(name string) (string, uint64, bool) {
	_, rest, ok := strings.Cut(name, "_")
	if !ok || !strings.HasSuffix(rest, ".mp4") {
		return "", 0, false
	}
	i := strings.LastIndex(rest, "_part")
	if i <= 0 {
		return "", 0, false
	}
	id, err := strconv.ParseUint(strings.TrimSuffix(rest[i+len("_part"):], ".mp4"), 10, 64)
	if err != nil {
		return "", 0, false
	}
	return rest[:i] + "_stream.m3u8", id, true
}

// call runs one request through the muxer unless close has begun; close
// waits for every call in flight before Muxer.Close.
func (s *liveStream) call(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	if s.closing || s.muxer == nil {
		s.mu.Unlock()
		return false
	}
	m := s.muxer
	s.calls.Add(1)
	s.mu.Unlock()
	defer s.calls.Done()
	m.Handle(w, r)
	return true
}

func (s *liveStream) wake() {
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// written tells waiters the muxer's state may have moved on. Called by the
// run loop after each write; until the stream has content it also asks the
// non-parking content probe.
func (s *liveStream) written(m *gohlslib.Muxer) {
	s.mu.Lock()
	content := s.content
	s.mu.Unlock()
	if !content {
		// No calls-accounting needed: close stops the run loop before Muxer.Close.
		content = fetch(m, leadingPlaylist, contentProbe).Code == http.StatusOK
	}
	s.mu.Lock()
	s.gen++
	s.content = content
	s.cond.Broadcast()
	s.mu.Unlock()
}

// await waits in our code until check, given a snapshot of playlist name,
// says anything but vWait. Snapshots are shared: one waiter refreshes a
// stale one while the others sleep, so a crowd of blocking requests costs
// one playlist per write, not one per request.
func (s *liveStream) await(ctx context.Context, name string, check func(st *mediaState, current bool) verdict) verdict {
	start := time.Now()
	stop := context.AfterFunc(ctx, s.wake)
	defer stop()
	t := time.AfterFunc(contentWait, s.wake)
	defer t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closing {
			return vClosed
		}
		if ctx.Err() != nil {
			return vTimeout
		}
		limit := contentWait
		st := s.snaps[name]
		if s.content && st != nil {
			if v := check(st, st.gen == s.gen); v != vWait {
				return v
			}
			limit = st.blockLimit()
		}
		if time.Since(start) >= limit {
			return vTimeout
		}
		t.Reset(time.Until(start.Add(limit)))
		if s.content && (st == nil || st.gen != s.gen) && !s.refreshing {
			s.refresh(name)
			continue
		}
		s.cond.Wait()
	}
}

// refresh fetches playlist name; called and returns with s.mu held, and
// only while the stream has content (so the plain fetch cannot park).
func (s *liveStream) refresh(name string) {
	s.refreshing = true
	gen, m := s.gen, s.muxer
	s.calls.Add(1)
	s.mu.Unlock()
	st := parseState(fetch(m, name, ""))
	s.calls.Done()
	s.mu.Lock()
	s.refreshing = false
	st.gen = gen
	s.snaps[name] = st
	s.cond.Broadcast()
}

func fetch(m *gohlslib.Muxer, name, rawQuery string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
	req.URL.Path, req.URL.RawQuery = "/"+name, rawQuery
	m.Handle(rec, req)
	return rec
}

func parseState(rec *httptest.ResponseRecorder) *mediaState {
	pl, err := playlist.Unmarshal(rec.Body.Bytes())
	media, ok := pl.(*playlist.Media)
	if rec.Code != http.StatusOK || err != nil || !ok {
		return &mediaState{missing: true}
	}
	st := &mediaState{seq: uint64(media.MediaSequence), trailing: len(media.Parts),
		target: time.Duration(media.TargetDuration) * time.Second}
	for _, sg := range media.Segments {
		ss := segState{gap: sg.Gap, parts: -1}
		if len(sg.Parts) > 0 {
			ss.parts = len(sg.Parts)
		}
		st.segs = append(st.segs, ss)
	}
	if media.PreloadHint != nil {
		if _, id, ok := partName(strings.SplitN(media.PreloadHint.URI, "?", 2)[0]); ok {
			st.nextPart, st.hasHint = id, true
		}
	}
	return st
}
