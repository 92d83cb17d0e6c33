// End-to-end measurement of the sfu's forward delay for an RTSP publisher
// with many viewers.

package app

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// histogramQuantiles reads a histogram's cumulative buckets from /metrics
// and interpolates quantiles within them.
func histogramQuantiles(t *testing.T, a *App, name string, qs ...float64) (count float64, out []float64) {
	t.Helper()
	type bucket struct{ le, n float64 }
	var bs []bucket
	for _, s := range metricSamples(t, a, name+"_bucket") {
		i := strings.Index(s.line, `le="`)
		j := strings.Index(s.line[i+4:], `"`)
		le, _ := strconv.ParseFloat(s.line[i+4:i+4+j], 64)
		bs = append(bs, bucket{le, s.value})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 {
		return 0, nil
	}
	count = bs[len(bs)-1].n
	for _, q := range qs {
		rank := q * count
		lo, prev := 0.0, 0.0
		v := math.Inf(1)
		for _, b := range bs {
			if b.n >= rank {
				if math.IsInf(b.le, 1) {
					v = lo
				} else if b.n == prev {
					v = b.le
				} else {
					v = lo + (b.le-lo)*(rank-prev)/(b.n-prev)
				}
				break
			}
			lo, prev = b.le, b.n
		}
		out = append(out, v)
	}
	return count, out
}

// TestRTSPForwardDelay50Viewers measures the in-sfu forward delay of an
// RTSP publish fanned out to 50 WHEP viewers. It only logs the figure.
func TestRTSPForwardDelay50Viewers(t *testing.T) {
	testenv.FFmpeg(t)
	if testing.Short() {
		t.Skip("50 viewers: not in -short")
	}
	a := startRTSPApp(t)
	key := createStream(t, a, "crowd")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	const viewers = 50
	subs := subscribeViewers(ctx, t, api, a.BaseURL()+"/whep/crowd", viewers)
	wait := ffmpegPublish(ctx, t, "rtsp://pub:"+key+"@"+a.RTSPAddr()+"/crowd", "tcp", "libopus", 4)
	if err := wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	got := 0
	for _, s := range subs {
		if n, _ := lossyAccessUnits(t, s.Video()); n > 0 {
			got++
		}
	}
	if got != viewers {
		t.Fatalf("%d of %d viewers got video", got, viewers)
	}
	n, q := histogramQuantiles(t, a, "streamd_sfu_forward_delay_seconds", 0.5, 0.99)
	t.Logf("RTSP→WHEP forward delay, %d viewers, %.0f packet writes: p50 %.1f µs, p99 %.1f µs", viewers, n, q[0]*1e6, q[1]*1e6)
}
