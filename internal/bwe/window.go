package bwe

// windowSlots is how many feedback packets the measurement window holds:
// Chrome sends one every 50–100 ms, so 64 cover well over a second.
const windowSlots = 64

// minRateSpan is the shortest receive-time span a delivered rate is computed
// over: below it a single frame burst would read as a huge rate.
const minRateSpan = int64(100e6) // 100 ms in ns

// minLossPackets is how many reported packets the loss fraction needs before
// it can signal congestion: one lost audio packet out of three is not 33 %
// loss in any useful sense.
const minLossPackets = 10

// arrivals accumulates received packets for a delivered rate: bytes over the
// receive-time span, leaving out the first packet's bytes (n packets span n−1
// gaps, so counting them all would overstate short bursts).
type arrivals struct {
	n         int64
	bytes     int64
	minArr    int64
	maxArr    int64
	firstSize int64
}

func (a *arrivals) add(arr, size int64) {
	if a.n == 0 || arr < a.minArr {
		a.minArr = arr
		a.firstSize = size
	}
	if a.n == 0 || arr > a.maxArr {
		a.maxArr = arr
	}
	a.n++
	a.bytes += size
}

func (a *arrivals) merge(b *arrivals) {
	if b.n == 0 {
		return
	}
	if a.n == 0 || b.minArr < a.minArr {
		a.minArr = b.minArr
		a.firstSize = b.firstSize
	}
	if a.n == 0 || b.maxArr > a.maxArr {
		a.maxArr = b.maxArr
	}
	a.n += b.n
	a.bytes += b.bytes
}

// rate returns bits/s and whether the span was long enough to say.
func (a *arrivals) rate() (float64, bool) {
	span := a.maxArr - a.minArr
	if a.n < 2 || span < minRateSpan {
		return 0, false
	}
	return float64(a.bytes-a.firstSize) * 8e9 / float64(span), true
}

// summary is what one feedback packet reported.
type summary struct {
	atNs     int64 // local time the feedback arrived
	acked    int64
	lost     int64 // may go negative when it receives packets an earlier one lost
	arr      arrivals
	delaySum int64
	qd       int64 // average queue delay of the timed packets, ns
}

// window is a ring of the latest feedback summaries.
type window struct {
	slots [windowSlots]summary
	head  int // next slot to write
	n     int
}

func (w *window) push(s *summary) {
	w.slots[w.head] = *s
	w.head = (w.head + 1) % windowSlots
	w.n = min(w.n+1, windowSlots)
}

// windowStats is what the window says at one moment.
type windowStats struct {
	rateValid bool
	delivered float64 // bits/s
	received  int64   // timed arrivals in the window
	lossValid bool
	loss      float64
	// Queue delay over the trend span: the oldest and newest feedback's,
	// the lowest, and how many feedbacks had timed packets.
	trendSamples int
	firstQD      int64
	lastQD       int64
	minQD        int64
}

// stats summarises the feedback of the last span ns, and the queue delay of
// the last trend ns.
func (w *window) stats(nowNs, span, trend int64) windowStats {
	var st windowStats
	var arr arrivals
	var acked, lost int64
	haveLast := false
	for k := range w.n {
		s := &w.slots[(w.head-1-k+2*windowSlots)%windowSlots]
		if s.atNs < nowNs-span {
			break
		}
		acked += s.acked
		lost += s.lost
		arr.merge(&s.arr)
		if s.arr.n == 0 {
			continue
		}
		if !haveLast {
			haveLast = true
			st.lastQD = s.qd
		}
		if s.atNs >= nowNs-trend {
			// Walking newest to oldest: the last one seen is the oldest.
			st.firstQD = s.qd
			if st.trendSamples == 0 || s.qd < st.minQD {
				st.minQD = s.qd
			}
			st.trendSamples++
		}
	}
	st.delivered, st.rateValid = arr.rate()
	st.received = arr.n
	lost = max(lost, 0)
	if acked+lost >= minLossPackets {
		st.lossValid = true
		st.loss = float64(lost) / float64(acked+lost)
	}
	return st
}

// baselineSlots divides the baseline window into buckets, each keeping the
// minimum delay seen during its time; the baseline is the minimum of the
// buckets still inside the window. Ten buckets make the baseline forget an
// old minimum within a tenth of the window of it expiring.
const baselineSlots = 10

type baselineSlot struct {
	start int64
	min   int64
	used  bool
}

// baseline tracks the minimum one-way delay over a sliding window.
type baseline struct {
	slots [baselineSlots]baselineSlot
}

// add records a delay observed at nowNs; width is one bucket's span.
func (b *baseline) add(nowNs, width, delay int64) {
	start := nowNs - nowNs%width
	s := &b.slots[(nowNs/width)%baselineSlots]
	if !s.used || s.start != start {
		*s = baselineSlot{start: start, min: delay, used: true}
		return
	}
	s.min = min(s.min, delay)
}

// get returns the minimum delay of the buckets within span of nowNs.
func (b *baseline) get(nowNs, span int64) (int64, bool) {
	var m int64
	ok := false
	for i := range b.slots {
		s := &b.slots[i]
		if !s.used || s.start <= nowNs-span {
			continue
		}
		if !ok || s.min < m {
			m = s.min
			ok = true
		}
	}
	return m, ok
}
