package rtctest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Layer is one encoding of a simulcast test publisher.
type Layer struct {
	RID           string
	Width, Height int
	Rate          string // ffmpeg bitrate, e.g. "300k"
}

// EncodeLayers encodes one clip per layer (30 fps, a keyframe every gop frames).
func EncodeLayers(ffmpeg, dir string, layers []Layer, seconds, gop int) ([][][]byte, error) {
	clips := make([][][]byte, len(layers))
	for i, l := range layers {
		aus, err := EncodeH264(ffmpeg, dir, l.Width, l.Height, 30, seconds, gop, l.Rate)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", l.RID, err)
		}
		clips[i] = aus
	}
	return clips, nil
}

// SimulcastPublisher is a pion WHIP publisher sending H.264 simulcast: one
// RTP stream per layer (rid), each from its own pre-encoded clip, frame by
// frame in lockstep at 30 fps, as a browser's simulcast encoder does. Each
// layer's RTP timestamps start at their own random offset but step together
// (same capture clock). A PLI for a layer makes it restart its clip, i.e.
// send a keyframe next.
type SimulcastPublisher struct {
	PC      *webrtc.PeerConnection
	Session string
	Token   string

	layers      []Layer
	clips       [][][]byte
	tracks      []*webrtc.TrackLocalStaticRTP
	packetizers []rtp.Packetizer
	pos         []int
	midID       uint8
	ridID       uint8
	// Active says which layers send (all by default).
	active []atomic.Bool
	plis   []atomic.Int32
	ssrcs  sync.Map // ssrc → layer index
	frames atomic.Int64
}

// PublishSimulcast connects a simulcast publisher with the given layers and clips.
func PublishSimulcast(ctx context.Context, api *webrtc.API, endpoint, token string, layers []Layer, clips [][][]byte) (*SimulcastPublisher, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p := &SimulcastPublisher{PC: pc, Token: token, layers: layers, clips: clips, pos: make([]int, len(layers)),
		active: make([]atomic.Bool, len(layers)), plis: make([]atomic.Int32, len(layers))}
	var sender *webrtc.RTPSender
	for i, l := range layers {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "sim", webrtc.WithRTPStreamID(l.RID))
		if err != nil {
			pc.Close()
			return nil, err
		}
		p.tracks = append(p.tracks, tr)
		p.packetizers = append(p.packetizers, rtp.NewPacketizer(1200, 0, 0, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000))
		p.active[i].Store(true)
		if i == 0 {
			t, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				pc.Close()
				return nil, err
			}
			sender = t.Sender()
		} else if err := sender.AddEncoding(tr); err != nil {
			pc.Close()
			return nil, err
		}
	}
	for _, l := range layers {
		go p.readRTCP(sender, l.RID)
	}
	if p.Session, err = Connect(ctx, pc, endpoint, token); err != nil {
		return nil, err
	}
	for _, x := range sender.GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			p.midID = uint8(x.ID)
		case sdp.SDESRTPStreamIDURI:
			p.ridID = uint8(x.ID)
		}
	}
	if p.midID == 0 || p.ridID == 0 {
		p.Close()
		return nil, fmt.Errorf("mid/rid header extensions not negotiated")
	}
	for i, e := range sender.GetParameters().Encodings {
		p.ssrcs.Store(uint32(e.SSRC), i)
	}
	return p, nil
}

// readRTCP counts one layer's keyframe requests (a simulcast sender reads
// each rid's RTCP apart).
func (p *SimulcastPublisher) readRTCP(s *webrtc.RTPSender, rid string) {
	for {
		pkts, _, err := s.ReadSimulcastRTCP(rid)
		if err != nil {
			return
		}
		for _, pk := range pkts {
			if pli, ok := pk.(*rtcp.PictureLossIndication); ok {
				if i, ok := p.ssrcs.Load(pli.MediaSSRC); ok {
					p.plis[i.(int)].Add(1)
				}
			}
		}
	}
}

// SetActive starts or stops sending layer i.
func (p *SimulcastPublisher) SetActive(i int, on bool) { p.active[i].Store(on) }

// PLIs is the number of keyframe requests layer i has received.
func (p *SimulcastPublisher) PLIs(i int) int { return int(p.plis[i].Load()) }

// Frames is the number of frames sent so far (per layer).
func (p *SimulcastPublisher) Frames() int { return int(p.frames.Load()) }

// Run sends frames at 30 fps until ctx ends or d has passed.
func (p *SimulcastPublisher) Run(ctx context.Context, d time.Duration) {
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	seen := make([]int32, len(p.layers))
	for end := time.Now().Add(d); time.Now().Before(end); {
		for j := range p.layers {
			if n := p.plis[j].Load(); n != seen[j] {
				seen[j] = n
				p.pos[j] = 0 // a keyframe next
			}
			if !p.active[j].Load() {
				p.packetizers[j].SkipSamples(90000 / 30)
				continue
			}
			clip := p.clips[j]
			for _, pkt := range p.packetizers[j].Packetize(clip[p.pos[j]%len(clip)], 90000/30) {
				_ = pkt.Header.SetExtension(p.midID, []byte("0"))
				_ = pkt.Header.SetExtension(p.ridID, []byte(p.layers[j].RID))
				_ = p.tracks[j].WriteRTP(pkt)
			}
			p.pos[j]++
		}
		p.frames.Add(1)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// Close ends the session (DELETE) and the peer connection.
func (p *SimulcastPublisher) Close() {
	_ = Delete(p.Session, p.Token)
	_ = p.PC.Close()
}
