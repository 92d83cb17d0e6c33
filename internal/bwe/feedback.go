package bwe

import (
	"time"

	"github.com/pion/rtcp"
)

// Feedback processes one TWCC feedback packet received at now: it walks the
// packet status chunks itself (run-length and status-vector chunks, 1- and
// 2-bit symbols), matches each reported sequence number to the packet Sent
// recorded, and updates the estimate. Duplicated and reordered feedback is
// harmless: a packet is counted once, and one reported lost that a later
// feedback reports received is moved from lost to received.
func (e *Estimator) Feedback(fb *rtcp.TransportLayerCC, now time.Time) {
	if fb == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	nowNs := e.sinceEpoch(now)
	if !e.haveSeq {
		// Nothing was sent, so there is nothing to match the report to.
		return
	}
	w := walker{
		e:      e,
		s:      summary{atNs: nowNs},
		nowNs:  nowNs,
		seq:    e.unwrap(fb.BaseSequenceNumber),
		left:   int(fb.PacketStatusCount),
		arr:    e.remote.ns(fb.ReferenceTime),
		deltas: fb.RecvDeltas,
	}
	for _, c := range fb.PacketChunks {
		if !w.chunk(c) {
			break
		}
	}
	if base, ok := e.baseline.get(nowNs, int64(e.cfg.BaselineWindow)); ok && w.s.arr.n > 0 {
		w.s.qd = w.s.delaySum/w.s.arr.n - base
	}
	if w.s.acked != 0 || w.s.lost != 0 {
		e.window.push(&w.s)
	}
	e.update(nowNs)
	e.judgeProbe(nowNs)
}

// walker feeds one feedback packet's symbols, in sequence order, to report.
type walker struct {
	e      *Estimator
	s      summary
	nowNs  int64
	seq    int64 // unwrapped sequence number of the next symbol
	left   int   // symbols the packet still covers (PacketStatusCount)
	arr    int64 // receiver-clock time of the last timed packet, ns
	deltas []*rtcp.RecvDelta
	di     int // next delta
}

// chunk feeds one chunk's symbols; false means the packet is exhausted or
// malformed and the rest should be skipped.
func (w *walker) chunk(c rtcp.PacketStatusChunk) bool {
	switch c := c.(type) {
	case *rtcp.RunLengthChunk:
		for range c.RunLength {
			if !w.symbol(c.PacketStatusSymbol) {
				return false
			}
		}
	case *rtcp.StatusVectorChunk:
		// rtcp decodes 1-bit symbols to 0 (not received) and 1 (received,
		// small delta), the same values as the 2-bit ones, so one loop
		// serves both sizes. The last chunk may hold more symbols than the
		// packet covers; symbol stops at PacketStatusCount.
		for _, sym := range c.SymbolList {
			if !w.symbol(sym) {
				return false
			}
		}
	default:
		return false
	}
	return w.left > 0
}

// symbol handles the status of the next sequence number.
func (w *walker) symbol(sym uint16) bool {
	if w.left <= 0 {
		return false
	}
	w.left--
	seq := w.seq
	w.seq++
	switch sym {
	case rtcp.TypeTCCPacketNotReceived:
		w.e.reportLost(&w.s, seq)
	case rtcp.TypeTCCPacketReceivedWithoutDelta:
		w.e.reportReceived(&w.s, seq, false, 0, w.nowNs)
	case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
		if w.di >= len(w.deltas) || w.deltas[w.di] == nil {
			return false
		}
		// Each delta is relative to the previous received packet (the
		// first to the reference time), in microseconds.
		w.arr += w.deltas[w.di].Delta * int64(time.Microsecond)
		w.di++
		w.e.reportReceived(&w.s, seq, true, w.arr, w.nowNs)
	default:
		return false
	}
	return true
}

// sent returns the ring entry of seq, or nil when it is no longer there (or
// was never sent). Holding mu.
func (e *Estimator) sent(seq int64) *sentPacket {
	p := &e.ring[seq&e.mask]
	if p.seq != seq {
		e.totals.Unknown++
		return nil
	}
	return p
}

// reportLost handles a "not received" status. Holding mu.
func (e *Estimator) reportLost(s *summary, seq int64) {
	p := e.sent(seq)
	if p == nil || p.state != stateSent {
		// Already reported: a lost packet stays lost until a report says
		// it arrived, and a received one never becomes lost again.
		return
	}
	p.state = stateLost
	s.lost++
	e.totals.Lost++
	if e.inProbe(p) {
		e.probe.lost++
		e.probe.pending--
	}
}

// reportReceived handles a "received" status; timed says arrNs (receiver
// clock) is known. Holding mu.
func (e *Estimator) reportReceived(s *summary, seq int64, timed bool, arrNs, nowNs int64) {
	p := e.sent(seq)
	if p == nil || p.state == stateAcked {
		return
	}
	probe := e.inProbe(p)
	switch p.state {
	case stateLost:
		// A late arrival: an earlier feedback reported it lost.
		s.lost--
		e.totals.Lost--
		if probe {
			e.probe.lost--
		}
	case stateSent:
		if probe {
			e.probe.pending--
		}
	}
	p.state = stateAcked
	s.acked++
	e.totals.Acked++
	if probe {
		e.probe.acked++
	}
	if !timed {
		return
	}
	size := int64(p.size)
	delay := arrNs - p.sendNs
	s.arr.add(arrNs, size)
	s.delaySum += delay
	e.baseline.add(nowNs, int64(e.cfg.BaselineWindow)/baselineSlots, delay)
	if probe {
		if e.probe.arr.n == 0 || delay > e.probe.maxDelay {
			e.probe.maxDelay = delay
		}
		e.probe.arr.add(arrNs, size)
	}
}
