// The fan-out publisher's RTSP variant (-ingest rtsp): the same clip, SEI
// stamps and timing as over WHIP, sent with ANNOUNCE/RECORD over TCP by a
// gortsplib client (its H.264 and Opus RTP encoders packetize).

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	rtspformat "github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// rtspSink records one stream on an RTSP server.
type rtspSink struct {
	c            *gortsplib.Client
	video, audio *description.Media
	venc         *rtph264.Encoder
	aenc         *rtpsimpleaudio.Encoder
	vts, ats     uint32 // RTP timestamp of the next video / audio frame

	done chan struct{}
	mu   sync.Mutex
	err  error // why the session ended
}

// rtspPublishURL is rtsp://pub:<key>@host:port/<stream>.
func rtspPublishURL(hostPort, stream, key string) string {
	u := url.URL{Scheme: "rtsp", User: url.UserPassword("pub", key), Host: hostPort, Path: "/" + stream}
	return u.String()
}

// publishRTSP announces H.264 (SPS/PPS from the clip's first access unit)
// and Opus at address and starts recording over TCP. A refused connection
// is retried for a few seconds (the server may still be starting).
func publishRTSP(ctx context.Context, address string, first []byte) (*rtspSink, error) {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(first); err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	vf := &rtspformat.H264{PayloadTyp: 96, PacketizationMode: 1}
	for _, n := range nalus {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			vf.SPS = n
		case h264.NALUTypePPS:
			vf.PPS = n
		}
	}
	af := &rtspformat.Opus{PayloadTyp: 111, ChannelCount: 2}
	s := &rtspSink{
		video: &description.Media{Type: description.MediaTypeVideo, Formats: []rtspformat.Format{vf}},
		audio: &description.Media{Type: description.MediaTypeAudio, Formats: []rtspformat.Format{af}},
		vts:   rand.Uint32(), ats: rand.Uint32(),
		done: make(chan struct{}),
	}
	var err error
	if s.venc, err = vf.CreateEncoder(); err != nil { // default payload ≤ 1450 bytes
		return nil, err
	}
	if s.aenc, err = af.CreateEncoder(); err != nil {
		return nil, err
	}
	desc := &description.Session{Medias: []*description.Media{s.video, s.audio}}
	tcp := gortsplib.TransportTCP
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A keyframe is up to a few hundred packets at high bitrates.
		s.c = &gortsplib.Client{Transport: &tcp, WriteQueueSize: 4096}
		err = s.c.StartRecording(address, desc)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	go func() {
		err := s.c.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
	}()
	return s, nil
}

func (s *rtspSink) writeVideo(au []byte, dur time.Duration) error {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(au); err != nil {
		return err
	}
	pkts, err := s.venc.Encode(nalus)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, p := range pkts {
		p.Timestamp = s.vts
		if err := s.c.WritePacketRTPWithNTP(s.video, p, now); err != nil {
			return err
		}
	}
	s.vts += uint32(dur * 90000 / time.Second)
	return nil
}

func (s *rtspSink) writeAudio(frame []byte, dur time.Duration) error {
	p, err := s.aenc.Encode(frame)
	if err != nil {
		return err
	}
	p.Timestamp = s.ats
	s.ats += uint32(dur * 48000 / time.Second)
	return s.c.WritePacketRTP(s.audio, p)
}

func (s *rtspSink) state() string {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err == nil {
			return "closed"
		}
		return "closed: " + s.err.Error()
	default:
		return "recording"
	}
}

// Close ends the session and waits for the client.
func (s *rtspSink) Close() {
	s.c.Close()
	<-s.done
}

// freeRTSPPort is a free even TCP port whose UDP port and the next one are
// free too (streamd binds RTP/RTCP over UDP there). Linux hands out odd
// ports for bind(0), so the even neighbour of one is checked.
func freeRTSPPort() (int, error) {
	free := func(network string, p int) bool {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if network == "tcp4" {
			l, err := net.Listen(network, addr)
			if err != nil {
				return false
			}
			l.Close()
			return true
		}
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	for range 100 {
		p, err := freePort("tcp")
		if err != nil {
			return 0, err
		}
		if p%2 != 0 {
			p--
		}
		if p > 1024 && free("tcp4", p) && free("udp4", p) && free("udp4", p+1) {
			return p, nil
		}
	}
	return 0, errors.New("no free even port for RTSP")
}
