package bwe

import (
	"testing"
	"time"
)

// drive calls Choose every 50 ms from `from` to `to` (simulated seconds from
// t0) with the estimate est(at), applying targets to *cur; it returns the
// switches and probe requests it saw.
func drive(c *Chooser, cur *int, from, to time.Duration, est func(at time.Duration) Estimate) (switches []switchEvent, probes []time.Duration) {
	for at := from; at < to; at += 50 * time.Millisecond {
		e := est(at)
		e.At = t0.Add(at)
		e.Ready = true
		d := c.Choose(t0.Add(at), e, testLayers, *cur)
		if d.Target != *cur {
			switches = append(switches, switchEvent{at: at, from: *cur, to: d.Target})
			*cur = d.Target
		}
		if d.ProbeRate > 0 {
			probes = append(probes, at)
		}
	}
	return switches, probes
}

func steady(bitrate int) func(time.Duration) Estimate {
	return func(time.Duration) Estimate { return Estimate{Bitrate: bitrate, Delivered: bitrate} }
}

func TestChooserStartLayer(t *testing.T) {
	for _, tc := range []struct {
		start, want int
	}{{0, 1}, {1, 0}, {600_000, 1}, {3_000_000, 2}} {
		c := NewChooser(ChooserConfig{StartBitrate: tc.start})
		if got := c.Choose(t0, Estimate{}, testLayers, -1).Target; got != tc.want {
			t.Errorf("StartBitrate %d: start layer %d, want %d", tc.start, got, tc.want)
		}
	}
	// Before any feedback a viewer keeps the layer it has.
	var c Chooser
	if got := c.Choose(t0, Estimate{}, testLayers, 2).Target; got != 2 {
		t.Errorf("no estimate yet: moved 2 → %d", got)
	}
}

func TestChooserStepsDownAfterSustainedCongestion(t *testing.T) {
	c := NewChooser(ChooserConfig{})
	cur := 2
	sw, _ := drive(c, &cur, 0, 1500*time.Millisecond, func(time.Duration) Estimate {
		return Estimate{Bitrate: 700_000, Delivered: 800_000, Congested: true}
	})
	// 0.85 × 800k = 680k fits layer 1; the step lands after DownAfter (1 s).
	if len(sw) != 1 || sw[0].to != 1 || sw[0].at != time.Second {
		t.Fatalf("switches %v, want one to layer 1 at 1 s", sw)
	}
}

// Short congestion blips (shorter than DownAfter) do not move the viewer.
func TestChooserIgnoresBlips(t *testing.T) {
	c := NewChooser(ChooserConfig{})
	cur := 2
	sw, _ := drive(c, &cur, 0, 30*time.Second, func(at time.Duration) Estimate {
		return Estimate{Bitrate: 3_000_000, Delivered: 2_600_000, Congested: at%(3*time.Second) < 900*time.Millisecond}
	})
	if len(sw) != 0 {
		t.Fatalf("switches %v on blips", sw)
	}
}

func TestChooserHeadroomMustLast(t *testing.T) {
	c := NewChooser(ChooserConfig{})
	cur := 1
	// 4 Mbit/s ≥ 1.25 × 2.5M, but it dips at 2 s, restarting the clock.
	sw, _ := drive(c, &cur, 0, 6*time.Second, func(at time.Duration) Estimate {
		if at == 2*time.Second {
			return Estimate{Bitrate: 3_000_000, Delivered: 700_000}
		}
		return Estimate{Bitrate: 4_000_000, Delivered: 700_000}
	})
	if len(sw) != 1 || sw[0].to != 2 || sw[0].at != 4550*time.Millisecond {
		t.Fatalf("switches %v, want one to layer 2 at 4.55 s (2.5 s after the dip)", sw)
	}
}

// An up-switch undone within 10 s holds further up-moves for 8 s, then
// 16 s after the next undo.
func TestChooserUndoneUpSwitchBacksOff(t *testing.T) {
	c := NewChooser(ChooserConfig{})
	cur := 1
	var upAt []time.Duration
	congestedFrom := time.Duration(-1)
	for at := time.Duration(0); at < 60*time.Second; at += 50 * time.Millisecond {
		// The link pretends room for 4 Mbit/s but chokes 2 s after each
		// step up to layer 2.
		est := Estimate{Bitrate: 4_000_000, Delivered: 700_000, Ready: true, At: t0.Add(at)}
		if cur == 2 && at >= congestedFrom {
			est = Estimate{Bitrate: 600_000, Delivered: 700_000, Congested: true, Ready: true, At: t0.Add(at)}
		}
		d := c.Choose(t0.Add(at), est, testLayers, cur)
		if d.Target > cur {
			upAt = append(upAt, at)
			congestedFrom = at + 2*time.Second
		}
		cur = d.Target
	}
	// Up at 2.5 s; congested from 4.5 s, down at 5.5 s: hold 8 s to
	// 13.5 s, headroom again 2.5 s → up at 16 s; down at 19 s, hold 16 s
	// to 35 s → up at 37.5 s; down at 40.5 s, hold 32 s.
	want := []time.Duration{2500 * time.Millisecond, 16 * time.Second, 37500 * time.Millisecond}
	if len(upAt) != len(want) {
		t.Fatalf("up-switches at %v, want %v", upAt, want)
	}
	for i := range want {
		if upAt[i] != want[i] {
			t.Fatalf("up-switches at %v, want %v", upAt, want)
		}
	}
}

func TestChooserProbeOutcome(t *testing.T) {
	for _, tc := range []struct {
		name      string
		result    ProbeResult
		wantLayer int
	}{
		{"carried", ProbeResult{ID: 1, Done: true, OK: true, Delivered: 700_000}, 1},
		{"short of the layer", ProbeResult{ID: 1, Done: true, OK: true, Delivered: 600_000}, 0},
		{"failed", ProbeResult{ID: 1, Done: true, OK: false, Delivered: 700_000}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChooser(ChooserConfig{})
			cur := 0
			_, probes := drive(c, &cur, 0, 5100*time.Millisecond, steady(190_000))
			if len(probes) != 1 || probes[0] != 5*time.Second {
				t.Fatalf("probes %v, want one at 5 s (quiet period)", probes)
			}
			// The probe's verdict arrives; a failure holds the next probe
			// for 8 s.
			// A probe that passed lifted the estimate to what it delivered.
			bitrate := 190_000
			if tc.result.OK {
				bitrate = tc.result.Delivered
			}
			sw, probes := drive(c, &cur, 5600*time.Millisecond, 20*time.Second, func(time.Duration) Estimate {
				return Estimate{Bitrate: bitrate, Delivered: 190_000, Probe: tc.result}
			})
			if cur != tc.wantLayer {
				t.Fatalf("layer %d after the probe (switches %v), want %d", cur, sw, tc.wantLayer)
			}
			if tc.wantLayer == 0 && (len(probes) == 0 || probes[0] != 13600*time.Millisecond) {
				t.Fatalf("next probe at %v, want 8 s after the failure (13.6 s)", probes)
			}
		})
	}
}

// No feedback for longer than StaleAfter freezes the choice, congested or
// not.
func TestChooserFreezesOnStaleEstimate(t *testing.T) {
	c := NewChooser(ChooserConfig{})
	est := Estimate{Ready: true, At: t0, Bitrate: 100_000, Delivered: 100_000, Congested: true}
	for at := time.Duration(0); at < 10*time.Second; at += 100 * time.Millisecond {
		d := c.Choose(t0.Add(3*time.Second+at), est, testLayers, 2)
		if d.Target != 2 || d.ProbeRate != 0 {
			t.Fatalf("stale estimate moved the viewer: %+v", d)
		}
	}
}
