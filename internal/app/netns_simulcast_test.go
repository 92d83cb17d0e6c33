package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// slowLinkLayers are a 720p simulcast publisher's layers, sized like a
// browser's: the medium layer does not fit a 700 kbit/s link either.
var slowLinkLayers = []rtctest.Layer{{RID: "l", Width: 320, Height: 180, Rate: "200k"}, {RID: "m", Width: 640, Height: 360, Rate: "900k"}, {RID: "h", Width: 1280, Height: 720, Rate: "2500k"}}

// TestSimulcastViewerOnSlowLink: a simulcast publisher (320x180, 640x360
// and 1280x720); one viewer on Auto behind a 700 kbit/s bottleneck (tc tbf
// in a network namespace), one on loopback. Both start on the small layer
// (Auto viewers do) and probe upwards: the shaped viewer is on the small
// layer within 5 s of its first picture and plays 20 s there without a
// freeze over 300 ms (its probes fail without hurting the picture); the
// loopback viewer climbs to 1280x720 within 10 s and stays. When the
// bottleneck is lifted, the shaped viewer climbs to 1280x720 too; when it
// comes back, the viewer is stepped down to the small layer within seconds.
func TestSimulcastViewerOnSlowLink(t *testing.T) {
	link := testenv.NewShapedLink(t)
	a := startLinkedApp(t, link)
	defer logMetrics(t, a, "streamd_sfu_layer", "streamd_sfu_padding", "streamd_sfu_nack", "streamd_viewer_bandwidth_estimate_bits_count")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	publishSimulcast(t, ctx, a, "slow", slowLinkLayers, 4, 60)

	// A phone on weak 4G: 700 kbit/s behind a 300 ms buffer.
	link.ShapeBuffer("700kbit", 300*time.Millisecond)
	endpoint := a.BaseURL() + "/whep/slow"
	shaped := startViewer(t, link, endpoint)
	local := startViewer(t, nil, endpoint)
	shaped.Session(t, 10*time.Second)
	local.Session(t, 10*time.Second)

	// Settling: from the first second with a picture to the first on 320x180.
	onLow := func(r rtctest.ViewerReport) bool { return r.Width == 320 && r.Frames > 0 }
	rs := shaped.Wait(t, 25*time.Second, func(rs []rtctest.ViewerReport) bool {
		return len(rs) > 0 && onLow(rs[len(rs)-1])
	})
	first, low := -1, -1
	for i, r := range rs {
		if first < 0 && r.Frames > 0 {
			first = i
		}
		if low < 0 && onLow(r) {
			low = i
		}
	}
	t.Logf("viewer behind 700 kbit/s, settling:\n%s", reportTable(rs))
	if first < 0 || rs[low].T-rs[first].T > 5 {
		t.Fatalf("on the small layer %d s after the first picture, want ≤ 5 s", rs[low].T-rs[max(first, 0)].T)
	}

	// 20 s on the small layer without a freeze.
	n := len(rs)
	rs = shaped.Seconds(t, n+20)[n:]
	lr := local.Reports()
	t.Logf("viewer behind 700 kbit/s, 20 s after settling:\n%s", reportTable(rs))
	t.Logf("viewer on loopback:\n%s", reportTable(lr))
	for _, r := range rs {
		if r.MaxGapMS > 300 && !machineStall(lr, r) {
			t.Errorf("second %d: a %d ms freeze behind the bottleneck", r.T, r.MaxGapMS)
		}
		if r.Width != 320 {
			t.Errorf("second %d: %dx%d, want the small layer", r.T, r.Width, r.Height)
		}
	}
	// The loopback viewer starts small too and climbs (probes) to the
	// large layer within a few seconds, then stays there — but for a
	// machine stall (2 shared cores, a -race build): a viewer starved of
	// CPU reads its packets late, which its estimate takes for a queue.
	top, off := -1, 0
	for i, r := range lr {
		if r.Width == 1280 && top < 0 {
			top = i
		}
		if top >= 0 && r.Width != 1280 {
			off++
		}
	}
	if top < 0 || lr[top].T > 10 {
		t.Fatalf("loopback viewer not on 1280x720 within 10 s")
	}
	t.Logf("loopback viewer on 1280x720 from second %d (%d of the %d seconds after off it)", lr[top].T, off, len(lr)-top)
	if off*5 > len(lr)-top {
		t.Errorf("loopback viewer off 1280x720 for %d of %d seconds after reaching it", off, len(lr)-top)
	}

	// Lifted: back to the large layer.
	link.Unshape()
	lifted := time.Now()
	shaped.Wait(t, 70*time.Second, func(rs []rtctest.ViewerReport) bool {
		return len(rs) > 0 && rs[len(rs)-1].Width == 1280
	})
	t.Logf("bottleneck lifted: back on 1280x720 after %v", time.Since(lifted).Round(100*time.Millisecond))

	// Congestion again, now on the large layer: down within seconds.
	n = len(shaped.Reports())
	link.ShapeBuffer("700kbit", 300*time.Millisecond)
	shapedAt := time.Now()
	rs = shaped.Wait(t, 15*time.Second, func(rs []rtctest.ViewerReport) bool {
		return len(rs) > n && onLow(rs[len(rs)-1])
	})
	down := time.Since(shapedAt)
	t.Logf("bottleneck back: on 320x180 after %v:\n%s", down.Round(100*time.Millisecond), reportTable(rs[n:]))
	if down > 6*time.Second {
		t.Errorf("stepped down %v after the bottleneck came back, want within ~5 s", down.Round(100*time.Millisecond))
	}
}

// machineStall reports whether the loopback viewer (no bottleneck) also
// froze in the second that ended nearest r: then the whole machine stalled
// (2 shared cores, other tests), not the link.
func machineStall(local []rtctest.ViewerReport, r rtctest.ViewerReport) bool {
	for _, l := range local {
		if d := l.AtMS - r.AtMS; d > -1000 && d < 1000 && l.MaxGapMS > 250 {
			return true
		}
	}
	return false
}

// logMetrics logs the server's metrics whose names start with one of prefixes.
func logMetrics(t *testing.T, a *App, prefixes ...string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.BaseURL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testStaff)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Logf("metrics: %v", err)
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	t.Logf("metrics:\n%s", strings.Join(out, "\n"))
}
