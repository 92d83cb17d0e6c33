package sfu

import (
	"testing"
	"time"
)

// feed plays a recorded sequence of (timestamp, arrival offset in ms) into a clock.
func feed(c *mediaClock, t0 time.Time, seq [][2]int64) {
	var last uint32
	for i, s := range seq {
		ts := uint32(s[0])
		step := uint32(0)
		if i > 0 {
			step = ts - last
		}
		c.newest(ts, t0.Add(time.Duration(s[1])*time.Millisecond), step)
		last = ts
	}
}

func TestMediaClockAlone(t *testing.T) {
	t0 := time.Now()
	at := func(c *mediaClock, ms int) uint32 {
		ts, ok := c.at(t0.Add(time.Duration(ms)*time.Millisecond), 500*time.Millisecond)
		if !ok {
			t.Fatal("clock not running")
		}
		return ts
	}
	cases := []struct {
		name string
		seq  [][2]int64 // timestamp, arrival ms
		now  int        // ms
		want uint32
	}{
		// 30 fps: the newest frame, until about a frame step has passed.
		{"steady, just after a frame", [][2]int64{{90000, 0}, {93000, 33}, {96000, 66}}, 70, 96000},
		{"steady, a stall of 80 ms", [][2]int64{{90000, 0}, {93000, 33}}, 113, 99000},
		{"near a boundary goes to the earlier frame", [][2]int64{{90000, 0}, {93000, 33}}, 68, 93000},
		// The case fixed before: one long step (a dropped frame, 66 ms)
		// among 33 ms ones must not make the clock jump by the long step.
		// (Extrapolating by the last, long step would say 12000 here.)
		{"irregular steps: extrapolate by the shortest", [][2]int64{{0, 0}, {3000, 33}, {6000, 66}, {12000, 133}}, 133 + 45, 15000},
		// Variable frame rate (a browser lowering fps): the shortest recent step rules.
		{"variable rate", [][2]int64{{0, 0}, {4500, 50}, {9000, 100}, {12000, 133}}, 133 + 45, 15000},
		// Extrapolation stops at the bound.
		{"bounded", [][2]int64{{0, 0}, {3000, 33}}, 33 + 5000, 3000 + 14*3000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mc mediaClock
			mc.newSource(90000)
			feed(&mc, t0, c.seq)
			if got := at(&mc, c.now); got != c.want {
				t.Fatalf("at %d ms: %d, want %d", c.now, got, c.want)
			}
		})
	}
}

func TestMediaClockSenderReportAlone(t *testing.T) {
	t0 := time.Now()
	var c mediaClock
	c.newSource(90000)
	c.spliced(1000) // outgoing = source + 1000
	feed(&c, t0, [][2]int64{{91000, 0}, {94000, 10}})
	// Source frame 93000 (outgoing 94000) was captured 80 ms before it arrived.
	c.senderReport(t0.Add(10*time.Millisecond-80*time.Millisecond), 93000)
	if ts, _ := c.at(t0.Add(10*time.Millisecond), time.Second); ts != 94000+2*3000 {
		t.Fatalf("%d, want %d: the frame captured now", ts, 94000+2*3000)
	}
	// A new source forgets the old one's reports.
	c.newSource(90000)
	if ts, _ := c.at(t0.Add(10*time.Millisecond), time.Second); ts != 94000 {
		t.Fatalf("%d after a new source, want the newest frame 94000", ts)
	}
	var never mediaClock
	if _, ok := never.at(t0, time.Second); ok {
		t.Fatal("a clock that never saw a packet runs")
	}
}
