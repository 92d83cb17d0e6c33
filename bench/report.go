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
	charts := []struct {
		scenario, x, file, ylabel string
		series                    []string
	}{
		{"fanout", "N", "fanout.svg", "ms", []string{"delay_p50_ms", "delay_p99_ms", "join_p50_ms", "server_cpu_ms_per_sub_s"}},
		{"overlay", "M", "overlay.svg", "ms", []string{"push_p50_ms", "push_p99_ms", "push_max_ms"}},
	}
	for _, c := range charts {
		var sel []Row
		for _, r := range rows {
			if r.Scenario == c.scenario {
				sel = append(sel, r)
			}
		}
		if len(sel) == 0 {
			continue
		}
		svg := lineChart(c.scenario+": "+c.ylabel+" by "+c.x, c.x, sel, c.series)
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return nil
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

// lineChart draws series (columns) against the x column as a small SVG,
// on a log scale when the values span more than two decades.
func lineChart(title, x string, rows []Row, series []string) string {
	const W, H, L, R, T, B = 680, 360, 60, 210, 30, 40
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"}
	maxX, maxY, minY := 0.0, 0.0, math.Inf(1)
	for _, r := range rows {
		maxX = math.Max(maxX, r.Get(x))
		for _, s := range series {
			if v := r.Get(s); !math.IsNaN(v) && v > 0 {
				maxY, minY = math.Max(maxY, v), math.Min(minY, v)
			}
		}
	}
	if maxX <= 0 {
		maxX = 1
	}
	if maxY <= 0 {
		maxY, minY = 1, 1
	}
	logScale := maxY/minY > 100
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
	for _, r := range rows {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(r.Get(x)), H-B+16, format(r.Get(x)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (W-R+L)/2, H-6, esc(x))
	for i, s := range series {
		c := colors[i%len(colors)]
		var pts []string
		for _, r := range rows {
			if v := r.Get(s); !math.IsNaN(v) && v >= 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(r.Get(x)), py(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(r.Get(x)), py(v), c)
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", W-R+10, T+10+i*18, c, W-R+26, T+15+i*18, esc(s))
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
