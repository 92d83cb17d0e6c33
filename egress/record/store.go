package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// On disk a show is a directory <dir>/<stream>/<show>/ holding
//
//	meta.json       the show record (ended_at set when it is closed)
//	init-N.mp4      fMP4 initialization segments (N grows when the codec parameters change)
//	NNNNNN.m4s      media segments, each one moof+mdat starting at a keyframe
//	segments.jsonl  one line per finished segment, appended after its file is in place
//	events.jsonl    overlay events (cards, stock, orders…) with their media time
//
// A segment file is written to a temporary name, synced and renamed before its
// line is appended, so after a crash every listed segment is complete and
// playable; a torn last line is ignored.

// ErrNotFound is returned for an unknown show.
var ErrNotFound = errors.New("record: no such show")

// Meta is a show's record.
type Meta struct {
	ID        string     `json:"id"`
	Stream    string     `json:"stream"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
}

// Segment is one finished media segment.
type Segment struct {
	N     int     `json:"n"`
	File  string  `json:"file"`
	Init  string  `json:"init"`
	Start float64 `json:"start"` // media time of its first video frame, s
	Dur   float64 `json:"dur"`   // s
	Bytes int64   `json:"bytes"`
	PDT   int64   `json:"pdt"` // wall clock (unix ms) of its first frame, live
}

// Event is one overlay event on the show's media timeline.
type Event struct {
	T    float64         `json:"t"` // media time, s
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Show is a show as the API lists it.
type Show struct {
	ID        string     `json:"id"`
	Stream    string     `json:"stream"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Duration  float64    `json:"duration_s"`
	Bytes     int64      `json:"bytes"`
	Cards     int        `json:"cards"`
	ReplayURL string     `json:"replay_url"`
}

// validName accepts stream and show ids as path elements (no separators, no dots first).
func validName(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, `/\`) && s[0] != '.'
}

func (r *Recorder) showDir(stream, show string) (string, error) {
	if !validName(stream) || !validName(show) {
		return "", ErrNotFound
	}
	return filepath.Join(r.Dir, stream, show), nil
}

// Segments returns a show's finished segments and whether the show has ended.
func (r *Recorder) Segments(stream, show string) ([]Segment, Meta, error) {
	dir, err := r.showDir(stream, show)
	if err != nil {
		return nil, Meta{}, err
	}
	m, err := readMeta(dir)
	if err != nil {
		return nil, Meta{}, err
	}
	segs, err := readLines[Segment](filepath.Join(dir, "segments.jsonl"))
	return segs, m, err
}

// ShowEvents returns a show's events in media-time order.
func (r *Recorder) ShowEvents(stream, show string) ([]Event, error) {
	dir, err := r.showDir(stream, show)
	if err != nil {
		return nil, err
	}
	if _, err := readMeta(dir); err != nil {
		return nil, err
	}
	evs, err := readLines[Event](filepath.Join(dir, "events.jsonl"))
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
	return evs, err
}

// File is the path of a show's file (init or media segment), if it exists.
func (r *Recorder) File(stream, show, name string) (string, error) {
	dir, err := r.showDir(stream, show)
	if err != nil || !validName(name) || !(strings.HasSuffix(name, ".m4s") || strings.HasSuffix(name, ".mp4")) {
		return "", ErrNotFound
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", ErrNotFound
	}
	return p, nil
}

// Has reports whether this recorder keeps the show.
func (r *Recorder) Has(stream, show string) bool {
	dir, err := r.showDir(stream, show)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "meta.json"))
	return err == nil
}

// Shows lists a stream's shows, newest first.
func (r *Recorder) Shows(stream string) ([]Show, error) {
	if !validName(stream) {
		return nil, ErrNotFound
	}
	ents, err := os.ReadDir(filepath.Join(r.Dir, stream))
	if errors.Is(err, os.ErrNotExist) {
		return []Show{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list shows: %w", err)
	}
	out := []Show{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := r.show(stream, e.Name())
		if err != nil {
			continue // a directory being created or removed
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	return out, nil
}

func (r *Recorder) show(stream, id string) (Show, error) {
	segs, m, err := r.Segments(stream, id)
	if err != nil {
		return Show{}, err
	}
	s := Show{ID: m.ID, Stream: m.Stream, StartedAt: m.StartedAt, EndedAt: m.EndedAt, ReplayURL: "/replay/" + stream + "/" + id}
	for _, sg := range segs {
		s.Bytes += sg.Bytes
		s.Duration = sg.Start + sg.Dur
	}
	s.Duration = float64(int64(s.Duration*1000)) / 1000
	evs, _ := r.ShowEvents(stream, id)
	for _, ev := range evs {
		if ev.Type == "card" && bytes.Contains(ev.Data, []byte(`"action":"show"`)) {
			s.Cards++
		}
	}
	return s, nil
}

func readMeta(dir string) (Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return Meta{}, ErrNotFound
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("show %s: meta: %w", dir, err)
	}
	return m, nil
}

func writeMeta(dir string, m Meta) error {
	b, _ := json.Marshal(m)
	return writeFileAtomic(filepath.Join(dir, "meta.json"), b)
}

// writeFileAtomic writes b to path through a synced temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// appendLine appends one JSON line to f and syncs it.
func appendLine(f *os.File, v any) error {
	b, _ := json.Marshal(v)
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append %s: %w", f.Name(), err)
	}
	return f.Sync()
}

// readLines reads a JSON-lines file; a missing file is empty and a torn or
// bad line (a crash mid-append) is skipped.
func readLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var v T
		if json.Unmarshal(sc.Bytes(), &v) == nil {
			out = append(out, v)
		}
	}
	return out, sc.Err()
}

// repair closes the shows a crash left open: ended_at becomes the wall-clock
// end of the last segment written (its real end); a show with no segment is
// removed. Leftover temporary files go.
func (r *Recorder) repair() error {
	streams, err := os.ReadDir(r.Dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.Dir, err)
	}
	for _, st := range streams {
		if !st.IsDir() {
			continue
		}
		shows, _ := os.ReadDir(filepath.Join(r.Dir, st.Name()))
		for _, sh := range shows {
			dir := filepath.Join(r.Dir, st.Name(), sh.Name())
			tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
			for _, t := range tmps {
				_ = os.Remove(t)
			}
			m, err := readMeta(dir)
			if err != nil || m.EndedAt != nil {
				continue
			}
			segs, _ := readLines[Segment](filepath.Join(dir, "segments.jsonl"))
			if len(segs) == 0 {
				r.log.Warn("removing a show that recorded nothing", "stream", m.Stream, "show", m.ID)
				_ = os.RemoveAll(dir)
				continue
			}
			last := segs[len(segs)-1]
			end := time.UnixMilli(last.PDT).Add(time.Duration(last.Dur * float64(time.Second))).UTC()
			m.EndedAt = &end
			if err := writeMeta(dir, m); err != nil {
				return err
			}
			r.log.Info("closed a show left open by a crash", "stream", m.Stream, "show", m.ID, "ended_at", end)
		}
	}
	return nil
}

// sweep removes the shows that ended more than keep ago.
func (r *Recorder) sweep(now time.Time) {
	if r.Keep <= 0 {
		return
	}
	streams, _ := os.ReadDir(r.Dir)
	for _, st := range streams {
		shows, _ := os.ReadDir(filepath.Join(r.Dir, st.Name()))
		for _, sh := range shows {
			dir := filepath.Join(r.Dir, st.Name(), sh.Name())
			m, err := readMeta(dir)
			if err == nil && m.EndedAt != nil && now.Sub(*m.EndedAt) > r.Keep {
				if err := os.RemoveAll(dir); err == nil {
					r.log.Info("show past retention removed", "stream", m.Stream, "show", m.ID)
				}
			}
		}
	}
}
