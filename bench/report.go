package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Row is one measured step of a scenario: ordered columns.
type Row struct {
	Scenario string
	Cols     []Col
}

// Col is a named value: float64, int or string. A negative float is "n/a"
// where the figure was unavailable (no PID, no /metrics).
type Col struct {
	Name string
	Val  any
}

func (r *Row) add(name string, v any) { r.Cols = append(r.Cols, Col{name, v}) }

// Get returns a numeric column (NaN when absent or not numeric).
func (r Row) Get(name string) float64 {
	for _, c := range r.Cols {
		if c.Name == name {
			switch v := c.Val.(type) {
			case float64:
				return v
			case int:
				return float64(v)
			case int64:
				return float64(v)
			}
		}
	}
	return math.NaN()
}

// Str returns a string column.
func (r Row) Str(name string) string {
	for _, c := range r.Cols {
		if c.Name == name {
			return fmt.Sprint(c.Val)
		}
	}
	return ""
}

// MarshalJSON keeps the column order.
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"scenario":`)
	s, _ := json.Marshal(r.Scenario)
	b.Write(s)
	for _, c := range r.Cols {
		k, _ := json.Marshal(c.Name)
		v := c.Val
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			v = nil
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(k)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func format(v any) string {
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsNaN(x) || x < 0:
			return "n/a"
		case x == math.Trunc(x) && math.Abs(x) < 1e15:
			return strconv.FormatFloat(x, 'f', 0, 64)
		case math.Abs(x) >= 100:
			return strconv.FormatFloat(x, 'f', 0, 64)
		case math.Abs(x) >= 10:
			return strconv.FormatFloat(x, 'f', 1, 64)
		default:
			return strconv.FormatFloat(x, 'f', 2, 64)
		}
	default:
		return fmt.Sprint(v)
	}
}

// Markdown renders one table per scenario (columns of its first row).
func Markdown(rows []Row) string {
	var b strings.Builder
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].Scenario == rows[i].Scenario {
			j++
		}
		fmt.Fprintf(&b, "\n### %s\n\n|", rows[i].Scenario)
		for _, c := range rows[i].Cols {
			fmt.Fprintf(&b, " %s |", c.Name)
		}
		b.WriteString("\n|")
		for range rows[i].Cols {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, r := range rows[i:j] {
			b.WriteString("|")
			for _, c := range r.Cols {
				fmt.Fprintf(&b, " %s |", format(c.Val))
			}
			b.WriteString("\n")
		}
		i = j
	}
	return b.String()
}

// writeResults writes results.jsonl, results.md and one SVG per ramped
// scenario into dir.
func writeResults(dir string, rows []Row) error {
	var jl bytes.Buffer
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		jl.Write(b)
		jl.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "results.jsonl"), jl.Bytes(), 0o644); err != nil {
		return err
	}
	md := fmt.Sprintf("# streamd bench %s\n\nmachine: %s\n%s", time.Now().UTC().Format(time.RFC3339), machine(), Markdown(rows))
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	// One chart per unit, so delay, CPU and loss never share an axis; one
	// line per server when rows of several servers are in the run.
	// fanout-simulcast has a row for all viewers (the server's figures)
	// and one per layer (the viewers'): each chart takes one kind.
	allRow := func(r Row) bool { return r.Str("layer") == "all" }
	layerRow := func(r Row) bool { return !allRow(r) }
	charts := []struct {
		scenario, x, file, title string
		series                   []string
		keep                     func(Row) bool // nil: every row
	}{
		{"fanout", "N", "fanout.svg", "fanout: delay and join time (ms)", []string{"delay_p50_ms", "delay_p99_ms", "join_p50_ms"}, nil},
		{"fanout", "N", "fanout-cpu.svg", "fanout: server CPU ms per subscriber-second", []string{"server_cpu_ms_per_sub_s"}, nil},
		{"fanout", "N", "fanout-loss.svg", "fanout: frame loss (%)", []string{"frame_loss_pct"}, nil},
		{"fanout-simulcast", "N", "fanout-simulcast.svg", "fanout -simulcast: delay p99 per layer asked for (ms)", []string{"delay_p99_ms"}, layerRow},
		{"fanout-simulcast", "N", "fanout-simulcast-cpu.svg", "fanout -simulcast: server CPU ms per subscriber-second", []string{"server_cpu_ms_per_sub_s"}, allRow},
		{"fanout-simulcast", "N", "fanout-simulcast-loss.svg", "fanout -simulcast: frame loss per layer asked for (%)", []string{"frame_loss_pct"}, layerRow},
		{"overlay", "M", "overlay.svg", "overlay: push latency (ms)", []string{"push_p50_ms", "push_p99_ms", "push_max_ms"}, nil},
	}
	for _, c := range charts {
		var sel []Row
		for _, r := range rows {
			if r.Scenario == c.scenario && (c.keep == nil || c.keep(r)) {
				sel = append(sel, r)
			}
		}
		if len(sel) == 0 {
			continue
		}
		svg := lineChart(c.title, c.x, chartSeries(sel, c.x, c.series))
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// point is one value of a chart line; a missing value (NaN: the figure was
// unavailable, e.g. no delay when every frame was lost) is a gap.
type point struct{ x, y float64 }

type line struct {
	name string
	pts  []point
}

// chartSeries makes one line per column, and per server when the rows
// come from several servers (the "server" column) and per layer when they
// are of several simulcast layers (the "layer" column).
func chartSeries(rows []Row, x string, cols []string) []line {
	key := func(r Row) string { return strings.TrimSpace(r.Str("server") + " " + r.Str("layer")) }
	var keys []string
	seen := map[string]bool{}
	for _, r := range rows {
		if k := key(r); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	var out []line
	for _, k := range keys {
		for _, c := range cols {
			l := line{name: c}
			if len(keys) > 1 {
				l.name = k + ": " + c
			}
			for _, r := range rows {
				if key(r) != k {
					continue
				}
				v := r.Get(c)
				if v < 0 { // -1: n/a
					v = math.NaN()
				}
				l.pts = append(l.pts, point{r.Get(x), v})
			}
			out = append(out, l)
		}
	}
	return out
}

// machine describes the box: cores and CPU model.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (nproc), %s", runtime.NumCPU(), model)
}

// lineChart draws lines against x as a small SVG, on a log scale when the
// values span more than two decades. Missing values break a line (and are
// listed as missing under the legend) instead of being drawn as 0.
func lineChart(title, x string, lines []line) string {
	const W, H, L, R, T, B = 720, 360, 60, 250, 30, 40
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}
	maxX, maxY, minY := 0.0, 0.0, math.Inf(1)
	zero := false
	for _, l := range lines {
		for _, p := range l.pts {
			maxX = math.Max(maxX, p.x)
			if !math.IsNaN(p.y) && p.y > 0 {
				maxY, minY = math.Max(maxY, p.y), math.Min(minY, p.y)
			} else if p.y == 0 {
				zero = true
			}
		}
	}
	if maxX <= 0 {
		maxX = 1
	}
	if maxY <= 0 {
		maxY, minY = 1, 1
	}
	logScale := maxY/minY > 100 && !zero
	var ticks []float64
	var py func(v float64) float64
	if logScale {
		lo, hi := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
		for e := lo; e <= hi; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		py = func(v float64) float64 {
			v = math.Max(v, ticks[0])
			return H - B - (math.Log10(v)-lo)/(hi-lo)*(H-T-B)
		}
	} else {
		maxY = niceCeil(maxY)
		for i := 0; i <= 4; i++ {
			ticks = append(ticks, maxY*float64(i)/4)
		}
		py = func(v float64) float64 { return H - B - v/maxY*(H-T-B) }
	}
	px := func(v float64) float64 { return L + v/maxX*(W-L-R) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	if logScale {
		title += " (log scale)"
	}
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="18" font-size="14">%s</text>`+"\n", L, esc(title))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", L, H-B, W-R, H-B, L, T, L, H-B)
	for _, v := range ticks {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", L, py(v), W-R, py(v), L-5, py(v)+4, format(v))
	}
	xs := map[float64]bool{}
	for _, l := range lines {
		for _, p := range l.pts {
			if !xs[p.x] {
				xs[p.x] = true
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(p.x), H-B+16, format(p.x))
			}
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (W-R+L)/2, H-6, esc(x))
	for i, l := range lines {
		c := colors[i%len(colors)]
		var seg, missing []string
		flush := func() {
			if len(seg) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(seg, " "))
			}
			seg = seg[:0]
		}
		for _, p := range l.pts {
			if math.IsNaN(p.y) {
				flush()
				missing = append(missing, format(p.x))
				continue
			}
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(p.x), py(p.y), c)
		}
		flush()
		label := l.name
		if len(missing) > 0 {
			label += " (missing at " + x + "=" + strings.Join(missing, ",") + ")"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", W-R+10, T+10+i*18, c, W-R+26, T+15+i*18, esc(label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// UnmarshalJSON reads a row back in column order (numbers as float64).
func (r *Row) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("row: want an object")
	}
	*r = Row{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		var v any
		if err := d.Decode(&v); err != nil {
			return err
		}
		if v == nil {
			v = math.NaN()
		}
		if k == "scenario" {
			r.Scenario, _ = v.(string)
			continue
		}
		r.add(k, v)
	}
	return nil
}

// rerender rewrites results.md and the charts of dir from its results.jsonl.
func rerender(dir string) ([]Row, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r Row
		if err := json.Unmarshal(l, &r); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, writeResults(dir, rows)
}
