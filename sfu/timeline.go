package sfu

import (
	"time"

	"github.com/pion/rtp"
)

// timeline maps incoming sequence numbers and timestamps onto a stream's
// one outgoing RTP timeline, which viewers keep across publishers: each new
// source is spliced in at its first keyframe, continuing the sequence
// numbers and moving the timestamps on by the wall time that passed.
//
// It is where simulcast layer switches go (issue 13): a layer is a source
// like a publisher is, and switching a viewer from one layer to another at
// the target layer's keyframe is a splice — with the timestamp offset taken
// from the layers' shared clock (sender reports) instead of arrival time, so
// one RTP timestamp still names one instant on every layer (spliceAt). As
// in LiveKit's rtpmunger, the munger keeps the last outgoing seq/ts and the
// offsets; a per-viewer timeline for layer switching would be one more of
// these values, started from the stream's.
//
// Not safe for concurrent use: the forwarder's write lock guards it.
type timeline struct {
	synced     bool // a source is spliced in
	firstInSeq uint16
	spliceTS   uint32
	sinceSync  int
	seqOffset  uint16
	tsOffset   uint32
	haveOut    bool
	lastOutSeq uint16
	lastOutTS  uint32
	lastArr    time.Time
}

// spliceSlack sequence numbers are left free before a splice point, for
// late packets of the keyframe the new source is spliced in at.
const spliceSlack = 8

// newSource forgets the current source: the next keyframe splices.
func (t *timeline) newSource() { t.synced = false }

// spliceAt splices pkt in with outgoing timestamp outTS.
func (t *timeline) spliceAt(pkt *rtp.Packet, outTS uint32) {
	t.tsOffset = outTS - pkt.Timestamp
	if t.haveOut {
		t.seqOffset = t.lastOutSeq + 1 + spliceSlack - pkt.SequenceNumber
	}
	t.spliceTS = pkt.Timestamp
	t.synced = true
	t.firstInSeq = pkt.SequenceNumber
	t.sinceSync = 0
}

// stale reports a packet from before the splice point: it belongs to no
// picture viewers can decode — except late ones of the splice keyframe
// itself (e.g. its SPS/PPS lost and retransmitted after the IDR), which fit
// in the sequence numbers the splice left free for them.
func (t *timeline) stale(pkt *rtp.Packet) bool {
	if t.sinceSync >= 4096 {
		return false
	}
	t.sinceSync++
	d := int16(pkt.SequenceNumber - t.firstInSeq)
	return d < 0 && (pkt.Timestamp != t.spliceTS || d < -spliceSlack)
}

// rewrite maps pkt onto the outgoing timeline. newest is true when it is the
// newest packet sent so far (not a reordered or retransmitted one); step is
// then the timestamp step from the previous newest (0 for the first).
func (t *timeline) rewrite(pkt *rtp.Packet, arrival time.Time) (seq uint16, ts uint32, newest bool, step uint32) {
	seq = pkt.SequenceNumber + t.seqOffset
	ts = pkt.Timestamp + t.tsOffset
	if !t.haveOut || int16(seq-t.lastOutSeq) > 0 {
		if t.haveOut {
			step = ts - t.lastOutTS
		}
		t.haveOut, t.lastOutSeq, t.lastOutTS, t.lastArr = true, seq, ts, arrival
		return seq, ts, true, step
	}
	return seq, ts, false, 0
}

// offset is the current source→outgoing timestamp offset.
func (t *timeline) offset() uint32 { return t.tsOffset }
