// The fan-out scenario's simulcast publisher (-simulcast): rtctest's
// SimulcastPublisher sends three H.264 layers, and a pion interceptor on its
// API stamps every frame of every layer with the bench SEI (fanout_sei.go),
// the layer's index in the counter's top byte, so that viewers measure each
// layer's delay as they do a single layer's.

package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

// simulcastLayers are the publisher's layers, smallest first: a quarter
// and half the size of width × height at 8 % and 36 % of its bitrate, and
// the full size at rate (an ffmpeg bitrate: 2500k, 2.5M): 1280x720 2500k
// gives 320x180 200k, 640x360 900k, 1280x720 2500k. A viewer asks for one
// by its name in layerNames (same index).
func simulcastLayers(width, height int, rate string) ([]rtctest.Layer, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(rate, "k"):
		mult = 1e3
	case strings.HasSuffix(rate, "M"):
		mult = 1e6
	}
	bps, err := strconv.ParseFloat(strings.TrimRight(rate, "kM"), 64)
	if err != nil || bps <= 0 {
		return nil, fmt.Errorf("-bitrate %q: want e.g. 2500k", rate)
	}
	bps *= mult
	even := func(v, div int) int { return v / div &^ 1 }
	kbps := func(f float64) string { return strconv.Itoa(int(bps*f/1e3)) + "k" }
	return []rtctest.Layer{
		{RID: "l", Width: even(width, 4), Height: even(height, 4), Rate: kbps(0.08)},
		{RID: "m", Width: even(width, 2), Height: even(height, 2), Rate: kbps(0.36)},
		{RID: "h", Width: width, Height: height, Rate: kbps(1)},
	}, nil
}

func layerNames() []string { return []string{"low", "medium", "high"} }

// layerURL is the WHEP endpoint with ?layer=name.
func layerURL(whep, name string) string {
	u, err := url.Parse(whep)
	if err != nil {
		return whep
	}
	q := u.Query()
	q.Set("layer", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// seiStamper is a pion interceptor (its own factory) for the simulcast
// publisher's API. Before the first slice packet of each frame of a layer
// (after the SPS/PPS packet of a keyframe, where a single-layer publisher's
// packetizer puts the SEI too) it writes one more packet: the bench SEI as a
// single NAL unit, same timestamp and header extensions, stamped with the
// layer's next frame number and the time. The stream's later sequence
// numbers move up by one per SEI. Registered after pion's defaults it wraps
// them, so the NACK cache, sender reports and transport-wide sequence
// numbers all see the stream as sent.
type seiStamper struct {
	interceptor.NoOp
	rids map[string]int  // rid → layer index
	next []atomic.Uint64 // per layer: the number of the next frame
	late atomic.Int64    // frames of the smallest layer more than a frame late
}

func newSEIStamper(layers []rtctest.Layer) *seiStamper {
	st := &seiStamper{rids: map[string]int{}, next: make([]atomic.Uint64, len(layers))}
	for i, l := range layers {
		st.rids[l.RID] = i
	}
	return st
}

func (st *seiStamper) NewInterceptor(string) (interceptor.Interceptor, error) { return st, nil }

func (st *seiStamper) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeH264) {
		return w
	}
	var ridID uint8
	for _, x := range info.RTPHeaderExtensions {
		if x.URI == sdp.SDESRTPStreamIDURI {
			ridID = uint8(x.ID)
		}
	}
	// One stream's state: its packets come from the publisher's one
	// sending goroutine.
	var added uint16 // SEI packets inserted so far
	var lastTS uint32
	var prevNs int64
	stamped := false
	const frame = int64(time.Second / 30)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if ridID != 0 && (!stamped || h.Timestamp != lastTS) && sliceStart(payload) {
			if l, ok := st.rids[string(h.GetExtension(ridID))]; ok {
				stamped, lastTS = true, h.Timestamp
				now := time.Now().UnixNano()
				if l == 0 {
					if prevNs != 0 && now-prevNs > 2*frame {
						st.late.Add(1)
					}
					prevNs = now
				}
				sei := *h
				sei.Marker, sei.Padding, sei.PaddingSize = false, false, 0
				sei.Extensions = slices.Clone(h.Extensions)
				sei.SequenceNumber = h.SequenceNumber + added
				added++
				if _, err := w.Write(&sei, seiNAL(uint64(l)<<56|(st.next[l].Add(1)-1), now), a); err != nil {
					return 0, err
				}
			}
		}
		out := *h
		out.SequenceNumber = h.SequenceNumber + added
		return w.Write(&out, payload, a)
	})
}

// sliceStart: an H.264 RTP payload that starts a slice (single NAL or the
// first FU-A fragment).
func sliceStart(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	t := p[0] & 0x1f
	if t == 28 && len(p) > 1 && p[1]&0x80 != 0 {
		t = p[1] & 0x1f
	}
	return t >= 1 && t <= 5
}

// simulcastPub is the running simulcast publisher.
type simulcastPub struct {
	pub  *rtctest.SimulcastPublisher
	st   *seiStamper
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// publishSimulcast encodes the layers (cached), connects the publisher
// over WHIP and starts sending.
func publishSimulcast(ctx context.Context, ffmpeg, cache, whip, token string, layers []rtctest.Layer) (*simulcastPub, error) {
	clips, err := rtctest.EncodeLayers(ffmpeg, cache, layers, 10, 30)
	if err != nil {
		return nil, err
	}
	st := newSEIStamper(layers)
	// The stamper last, so it is outermost: a chain wraps each writer in turn.
	api, err := rtctest.NewAPIWith(rtctest.Loopback(), st)
	if err != nil {
		return nil, err
	}
	pub, err := rtctest.PublishSimulcast(ctx, api, whip, token, layers, clips)
	if err != nil {
		return nil, err
	}
	pctx, stop := context.WithCancel(ctx)
	p := &simulcastPub{pub: pub, st: st, stop: stop}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); pub.Run(pctx, 24*time.Hour) }()
	return p, nil
}

func (p *simulcastPub) next() []uint64 {
	out := make([]uint64, len(p.st.next))
	for i := range p.st.next {
		out[i] = p.st.next[i].Load()
	}
	return out
}

func (p *simulcastPub) plis(layer int) int { return p.pub.PLIs(layer) }
func (p *simulcastPub) lateFrames() int64  { return p.st.late.Swap(0) }
func (p *simulcastPub) writeErrs() int64   { return -1 } // SimulcastPublisher.Run does not count them
func (p *simulcastPub) state() string      { return p.pub.PC.ConnectionState().String() }

func (p *simulcastPub) close() {
	p.stop()
	p.wg.Wait()
	p.pub.Close()
}
