package ingest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/sfu"
)

// A simulcast publisher (a=simulcast, one RTP stream per rid: OBS's WHIP
// simulcast, a browser with sendEncodings) sends the same picture in up to
// three sizes. Until viewers get a layer each (issue 13), the stream
// carries one of them: the one with the most bytes, i.e. the largest the
// publisher's uplink sustains. Before, every layer's track replaced the
// previous one, so the quality viewers got depended on which rid happened
// to start last.
//
// The choice is re-made every layerWindow from the bytes each layer sent
// in it; a switch needs the other layer to carry layerHysteresis times the
// current one's bytes, so keyframe bursts do not make it flap. A switch is
// a new source on the stream's timeline (as a publisher takeover is):
// viewers move at the new layer's next keyframe, which is asked for.

const (
	layerWindow     = 1500 * time.Millisecond
	layerHysteresis = 1.25
)

type layer struct {
	rid   string
	ssrc  uint32
	codec webrtc.RTPCodecCapability
	bytes atomic.Int64 // in the current window
}

// current is the layer the stream carries and its writer.
type current struct {
	l  *layer
	tw *sfu.TrackWriter
}

type layerPicker struct {
	feed *peerFeed

	mu     sync.Mutex // choosing
	layers []*layer
	// start of the current window (unix ns): read per packet without the
	// lock, which only the packet that ends a window takes.
	start  atomic.Int64
	cur    atomic.Pointer[current]
	onPick func(rid string)
}

// add registers a layer; the first one is carried at once (video starts
// without waiting for the others).
func (p *layerPicker) add(pub *sfu.Publication, l *layer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layers = append(p.layers, l)
	if p.cur.Load() == nil {
		p.switchTo(pub, l)
		p.start.Store(time.Now().UnixNano())
	}
}

// write passes a layer's packet on when that layer is carried, and
// re-chooses once a window has passed.
func (p *layerPicker) write(pub *sfu.Publication, l *layer, pkt *rtp.Packet, arrival time.Time) {
	l.bytes.Add(int64(len(pkt.Payload)))
	if c := p.cur.Load(); c != nil && c.l == l {
		c.tw.WriteRTP(pkt, arrival)
	}
	if arrival.UnixNano()-p.start.Load() < int64(layerWindow) {
		return
	}
	p.mu.Lock()
	if arrival.UnixNano()-p.start.Load() >= int64(layerWindow) {
		p.choose(pub)
		p.start.Store(arrival.UnixNano())
	}
	p.mu.Unlock()
}

// senderReport passes a layer's sender report on when it is carried.
func (p *layerPicker) senderReport(l *layer, wall time.Time, rtpTS uint32) {
	if c := p.cur.Load(); c != nil && c.l == l {
		c.tw.SenderReport(wall, rtpTS)
	}
}

// choose (p.mu held) carries the layer with the most bytes in the window.
func (p *layerPicker) choose(pub *sfu.Publication) {
	c := p.cur.Load()
	best, curBytes := c.l, c.l.bytes.Load()
	bestBytes := curBytes
	for _, l := range p.layers {
		if b := l.bytes.Load(); b > bestBytes {
			best, bestBytes = l, b
		}
	}
	for _, l := range p.layers {
		l.bytes.Store(0)
	}
	if best != c.l && float64(bestBytes) > layerHysteresis*float64(curBytes) {
		p.switchTo(pub, best)
	}
}

// switchTo (p.mu held) makes l the carried layer: a new source on the
// stream, started at l's next keyframe, which is asked for now.
func (p *layerPicker) switchTo(pub *sfu.Publication, l *layer) {
	tw := pub.Track(webrtc.RTPCodecTypeVideo, l.codec)
	p.cur.Store(&current{l: l, tw: tw})
	_ = p.feed.peer.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
	if p.onPick != nil {
		p.onPick(l.rid)
	}
}
