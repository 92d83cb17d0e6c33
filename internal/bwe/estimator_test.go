package bwe

import (
	"sync"
	"testing"
	"time"
)

func TestConfigDefaultsFieldByField(t *testing.T) {
	c := Config{MaxBitrate: 8_000_000, History: 1000}.withDefaults()
	if c.MaxBitrate != 8_000_000 || c.MinBitrate != 100_000 || c.InitialBitrate != 1_000_000 {
		t.Fatalf("bitrates %d/%d/%d: set field lost or default missing", c.InitialBitrate, c.MinBitrate, c.MaxBitrate)
	}
	if c.History != 1024 {
		t.Fatalf("History %d, want 1000 rounded up to 1024", c.History)
	}
	if c.DelayThreshold != 70*time.Millisecond || c.LossThreshold != 0.10 {
		t.Fatalf("thresholds %v %v", c.DelayThreshold, c.LossThreshold)
	}
}

// The fan-out path calls Sent for every packet to every viewer.
func TestSentAllocatesNothing(t *testing.T) {
	e := New(Config{})
	now := t0
	var seq uint16
	send := func() {
		seq++
		now = now.Add(100 * time.Microsecond)
		e.Sent(seq, 1200, now)
	}
	if n := testing.AllocsPerRun(5000, send); n != 0 {
		t.Fatalf("Sent: %v allocations per call, want 0", n)
	}
	e.StartProbe(3_000_000, time.Hour, now)
	if n := testing.AllocsPerRun(5000, send); n != 0 {
		t.Fatalf("Sent during a probe: %v allocations per call, want 0", n)
	}
}

func BenchmarkSent(b *testing.B) {
	e := New(Config{})
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Sent(uint16(i), 1200, now.Add(time.Duration(i)*time.Microsecond))
	}
}

// Sent from the audio and video writers while Feedback and the chooser's
// reads run: meant for -race.
func TestConcurrentUse(t *testing.T) {
	e := New(Config{})
	var mu sync.Mutex // hands out sequence numbers like the SFU's counter
	var seq uint16
	e.Sent(0, 100, t0) // so that every report below can be matched or counted
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := range 2000 {
				mu.Lock()
				seq++
				s := seq
				mu.Unlock()
				e.Sent(s, 200+w*1000, t0.Add(time.Duration(i)*time.Millisecond))
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			sts := make([]status, 20)
			for j := range sts {
				sts[j] = status{received: j%5 != 0, arrUs: int64(i*20+j) * 1000}
			}
			e.Feedback(buildFeedback(t, uint16(1+i*20), uint8(i), sts), t0.Add(time.Duration(i)*10*time.Millisecond))
			_ = e.Estimate()
			_ = e.Probing(t0)
		}
	})
	wg.Wait()
	tot := e.Totals()
	if tot.Acked+tot.Lost+tot.Unknown != 4000 {
		t.Fatalf("totals %+v do not cover the 4000 reported packets", tot)
	}
}

// Feedback in which every packet was lost (a blackout) must read as
// congestion and cut the estimate, not freeze it.
func TestBlackoutIsCongestion(t *testing.T) {
	e := New(Config{})
	for i := range 200 {
		e.Sent(uint16(i), 1200, t0.Add(time.Duration(i)*5*time.Millisecond))
	}
	got := func(first, n int) []status {
		sts := make([]status, n)
		for j := range sts {
			sts[j] = status{received: true, arrUs: int64(first+j) * 5000}
		}
		return sts
	}
	e.Feedback(buildFeedback(t, 0, 0, got(0, 60)), t0.Add(320*time.Millisecond))
	if est := e.Estimate(); !est.Ready || est.Congested {
		t.Fatalf("after clean feedback: %+v", est)
	}
	// 2 s later, 140 packets reported lost.
	e.Feedback(buildFeedback(t, 60, 1, make([]status, 140)), t0.Add(2500*time.Millisecond))
	est := e.Estimate()
	if !est.Congested || est.Loss != 1 || est.Bitrate != 100_000 {
		t.Fatalf("after a blackout: %+v, want congested, loss 1, bitrate at the 100k floor", est)
	}
}

// A probe on a link with room passes and lifts the estimate to the rate it
// delivered; Probing is true only inside its window.
func TestProbePassesOnRoomyLink(t *testing.T) {
	e := New(Config{})
	const n = 100 // 1200 bytes every 2 ms: 4.8 Mbit/s, for 200 ms
	for i := range 10 {
		e.Sent(uint16(i), 1200, t0.Add(time.Duration(i)*20*time.Millisecond))
	}
	start := t0.Add(200 * time.Millisecond)
	e.StartProbe(4_800_000, 200*time.Millisecond, start)
	if !e.Probing(start) || e.Probing(start.Add(200*time.Millisecond)) {
		t.Fatalf("Probing wrong at the window's edges")
	}
	for i := range n {
		e.Sent(uint16(10+i), 1200, start.Add(time.Duration(i)*2*time.Millisecond))
	}
	sts := make([]status, 10+n)
	for i := range sts {
		sendUs := int64(i) * 20_000
		if i >= 10 {
			sendUs = 200_000 + int64(i-10)*2000
		}
		sts[i] = status{received: true, arrUs: 30_000 + sendUs}
	}
	e.Feedback(buildFeedback(t, 0, 0, sts), start.Add(300*time.Millisecond))
	pr := e.ProbeResult()
	if !pr.Done || !pr.OK || !near(float64(pr.Delivered), 4_800_000, 0.02) {
		t.Fatalf("probe %+v, want passed at ~4.8 Mbit/s", pr)
	}
	if est := e.Estimate(); est.Bitrate != pr.Delivered || est.Probe != pr {
		t.Fatalf("estimate %+v after probe %+v: want bitrate = delivered", est, pr)
	}
}
