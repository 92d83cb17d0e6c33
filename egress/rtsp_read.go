// RTSP readers: describing a live stream's codecs and feeding each reader
// from sfu taps, as a WHEP viewer is fed. The RTSP server (ingest's: one
// port for publishers and readers) hands reading sessions to RTSPReaders.

package egress

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/sfu"
)

// RTSPReaders serves the RTSP readers of live streams. Configure the
// fields, then Start; the RTSP server calls Describe, Open and the readers'
// methods from its session callbacks.
type RTSPReaders struct {
	SFU *sfu.SFU
	// ReadIdleTimeout ends readers of a stream that has had no publisher
	// for that long (default 10 s); a publisher that reconnects sooner
	// keeps them.
	ReadIdleTimeout time.Duration
	Logger          *slog.Logger

	mu      sync.Mutex
	readers map[*RTSPReader]struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Start starts the janitor.
func (rs *RTSPReaders) Start() {
	if rs.ReadIdleTimeout == 0 {
		rs.ReadIdleTimeout = 10 * time.Second
	}
	if rs.Logger == nil {
		rs.Logger = slog.New(slog.DiscardHandler)
	}
	rs.readers = map[*RTSPReader]struct{}{}
	rs.stop = make(chan struct{})
	rs.wg.Add(1)
	go rs.janitor()
}

// Close stops the janitor and detaches every reader; it returns how many
// were still open.
func (rs *RTSPReaders) Close() int {
	close(rs.stop)
	rs.wg.Wait()
	n := 0
	for _, r := range rs.list() {
		if r.Close() {
			n++
		}
	}
	return n
}

func (rs *RTSPReaders) list() []*RTSPReader {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]*RTSPReader, 0, len(rs.readers))
	for r := range rs.readers {
		out = append(out, r)
	}
	return out
}

// janitor ends readers whose stream changed codec (their SDP no longer
// fits) or has had no publisher for ReadIdleTimeout.
func (rs *RTSPReaders) janitor() {
	defer rs.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-rs.stop:
			return
		case now := <-t.C:
			for _, r := range rs.list() {
				if reason := r.check(now, rs.ReadIdleTimeout); reason != "" {
					rs.Logger.Info("rtsp reader ended", "stream", r.stream, "reason", reason)
					r.ss.Close()
				}
			}
		}
	}
}

// readerTrack is one kind a reader gets: its media in the reader's SDP and
// the codec it was described with.
type readerTrack struct {
	medi  *description.Media
	codec webrtc.RTPCodecCapability
	pt    uint8
}

// Describe describes a live stream's current codecs for a reader of srv:
// nil when there is nothing to read (no publisher, or nothing RTSP carries).
func (rs *RTSPReaders) Describe(srv *gortsplib.Server, id string) (*gortsplib.ServerStream, error) {
	st := rs.SFU.Stream(id)
	desc := &description.Session{Title: id}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		c, ok := st.Codec(kind)
		if !ok {
			continue
		}
		f := RTSPFormat(c)
		if f == nil {
			continue
		}
		mt := description.MediaTypeVideo
		if kind == webrtc.RTPCodecTypeAudio {
			mt = description.MediaTypeAudio
		}
		desc.Medias = append(desc.Medias, &description.Media{Type: mt, Formats: []format.Format{f}})
	}
	if len(desc.Medias) == 0 || !rs.SFU.Live(id) {
		return nil, nil
	}
	ss := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := ss.Initialize(); err != nil {
		return nil, err
	}
	return ss, nil
}

// RTSPFormat is how an sfu codec is described to RTSP readers.
func RTSPFormat(c webrtc.RTPCodecCapability) format.Format {
	switch strings.ToLower(c.MimeType) {
	case strings.ToLower(webrtc.MimeTypeH264):
		return &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	case strings.ToLower(webrtc.MimeTypeH265):
		return &format.H265{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeVP8):
		return &format.VP8{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeVP9):
		return &format.VP9{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeAV1):
		return &format.AV1{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeOpus):
		return &format.Opus{PayloadTyp: 111, ChannelCount: 2}
	case strings.ToLower(webrtc.MimeTypePCMU):
		return &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
	case strings.ToLower(webrtc.MimeTypePCMA):
		return &format.G711{PayloadTyp: 8, MULaw: false, SampleRate: 8000, ChannelCount: 1}
	}
	return nil
}

// codecOfFormat is the inverse of RTSPFormat, for the reader's taps.
func codecOfFormat(f format.Format) webrtc.RTPCodecCapability {
	switch f := f.(type) {
	case *format.H264:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "packetization-mode=1"}
	case *format.H265:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}
	case *format.VP8:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	case *format.VP9:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}
	case *format.AV1:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}
	case *format.Opus:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	case *format.G711:
		if f.MULaw {
			return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}
		}
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}
	}
	return webrtc.RTPCodecCapability{}
}

func readTracks(st *gortsplib.ServerStream) map[webrtc.RTPCodecType]readerTrack {
	out := map[webrtc.RTPCodecType]readerTrack{}
	for _, medi := range st.Desc.Medias {
		kind := webrtc.RTPCodecTypeVideo
		if medi.Type == description.MediaTypeAudio {
			kind = webrtc.RTPCodecTypeAudio
		}
		f := medi.Formats[0]
		out[kind] = readerTrack{medi: medi, codec: codecOfFormat(f), pt: f.PayloadType()}
	}
	return out
}

// Open makes the reader of session ss, reading stream id through st (from
// Describe).
func (rs *RTSPReaders) Open(ss *gortsplib.ServerSession, id string, st *gortsplib.ServerStream) *RTSPReader {
	r := &RTSPReader{rs: rs, stream: id, ss: ss, st: st, tracks: readTracks(st), since: time.Now()}
	rs.mu.Lock()
	rs.readers[r] = struct{}{}
	rs.mu.Unlock()
	return r
}

// RTSPReader is one RTSP reader session: its own gortsplib stream fed by
// sfu taps, so that it joins like a WHEP viewer (from the keyframe cache).
type RTSPReader struct {
	rs     *RTSPReaders
	stream string
	ss     *gortsplib.ServerSession
	st     *gortsplib.ServerStream
	tracks map[webrtc.RTPCodecType]readerTrack

	mu      sync.Mutex
	removes []func()
	started bool
	closed  bool
	since   time.Time // when the stream was last seen live
}

// Stream is the id of the stream read.
func (r *RTSPReader) Stream() string { return r.stream }

// ServerStream is the reader's gortsplib stream.
func (r *RTSPReader) ServerStream() *gortsplib.ServerStream { return r.st }

// Start attaches the taps (once the answer to PLAY is out, so the keyframe
// cache replayed to the joiner is not lost).
func (r *RTSPReader) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	st := r.rs.SFU.Stream(r.stream)
	for kind, t := range r.tracks {
		w := &tapWriter{st: r.st, medi: t.medi}
		codecs := []webrtc.RTPCodecParameters{{RTPCodecCapability: t.codec, PayloadType: webrtc.PayloadType(t.pt)}}
		r.removes = append(r.removes, st.AddTap(kind, w, codecs, randomSSRC()))
	}
	r.rs.Logger.Info("rtsp reader", "stream", r.stream, "tracks", len(r.tracks))
}

// check says why the reader should end, if it should.
func (r *RTSPReader) check(now time.Time, idle time.Duration) string {
	live := r.rs.SFU.Live(r.stream)
	r.mu.Lock()
	defer r.mu.Unlock()
	if live {
		r.since = now
		// Only a live stream is looked up: SFU.Stream would bring a deleted
		// one back.
		st := r.rs.SFU.Stream(r.stream)
		for kind, t := range r.tracks {
			if c, ok := st.Codec(kind); ok && !strings.EqualFold(c.MimeType, t.codec.MimeType) {
				return "the stream's " + kind.String() + " codec changed to " + c.MimeType
			}
		}
		return ""
	}
	if now.Sub(r.since) > idle {
		return "the stream has had no publisher for " + idle.String()
	}
	return ""
}

// Close detaches the reader; it reports whether this call closed it.
func (r *RTSPReader) Close() bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	r.closed = true
	removes := r.removes
	r.removes = nil
	r.mu.Unlock()
	for _, rm := range removes {
		rm()
	}
	r.st.Close()
	r.rs.mu.Lock()
	delete(r.rs.readers, r)
	r.rs.mu.Unlock()
	return true
}

// tapWriter hands the sfu's packets to a reader's gortsplib stream, which
// queues them per reader (it never blocks the fan-out).
type tapWriter struct {
	st   *gortsplib.ServerStream
	medi *description.Media
	pkt  rtp.Packet
}

func (w *tapWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.pkt.Header = *h
	w.pkt.Payload = payload
	if err := w.st.WritePacketRTP(w.medi, &w.pkt); err != nil {
		return 0, err
	}
	return len(payload), nil
}

func (w *tapWriter) Write(b []byte) (int, error) {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	return w.WriteRTP(&p.Header, p.Payload)
}

func randomSSRC() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
