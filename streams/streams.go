// Package streams keeps the stream records (id, title, publish key, an
// optional pull source) in the embedded store or Redis, and serves
// /api/streams. Live state is not stored here: it is asked of the sfu and
// ingest through the Status hook when a record is read.
package streams

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/streamd/streamd/internal/httpx"
)

// Record is a stream as stored.
type Record struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	PublishKey string    `json:"publish_key"`
	Source     string    `json:"source,omitempty"`
	Private    bool      `json:"private,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Status is the runtime state of a stream, filled in by cmd/streamd from the
// sfu and ingest.
type Status struct {
	Live        bool     `json:"live"`
	Viewers     int      `json:"viewers"`
	Warnings    []string `json:"warnings"`
	SourceState string   `json:"source_state,omitempty"`
	SourceError string   `json:"source_error,omitempty"`
}

// Store persists records.
type Store interface {
	// Create stores r unless its id exists (ErrExists).
	Create(ctx context.Context, r Record) error
	Get(ctx context.Context, id string) (Record, error)
	List(ctx context.Context) ([]Record, error)
	Delete(ctx context.Context, id string) error
}

var (
	// ErrNotFound: no stream with that id.
	ErrNotFound = errors.New("stream not found")
	// ErrExists: a stream with that id already exists.
	ErrExists = errors.New("stream exists")
)

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`)

// ValidID reports whether id can name a stream (it appears in URLs and RTSP paths).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Registry is the stream registry service.
type Registry struct {
	Store      Store
	StaffToken string
	// Status returns the runtime state of a stream (nil: none).
	Status func(id string) Status
	Logger *slog.Logger
	// Links signs and checks private-stream viewer links (nil: only the
	// publish key and the staff token open a private stream).
	Links Signer
	// CacheTTL bounds how long a record read from the store is trusted
	// (0: until this node deletes it). Nodes of a cluster set it, because a
	// record deleted on another node is not deleted from this node's cache.
	CacheTTL time.Duration

	watchMu  sync.Mutex
	watchers []func(r Record, deleted bool)

	cacheMu sync.RWMutex
	cache   map[string]cached
}

type cached struct {
	r  Record
	at time.Time
}

// Initialize prepares the registry.
func (g *Registry) Initialize() error {
	if g.Logger == nil {
		g.Logger = slog.New(slog.DiscardHandler)
	}
	g.cache = map[string]cached{}
	return nil
}

// Watch registers fn to be told about records created and deleted through
// this registry (RTSP pulls follow it; the sfu ends deleted streams).
func (g *Registry) Watch(fn func(r Record, deleted bool)) {
	g.watchMu.Lock()
	g.watchers = append(g.watchers, fn)
	g.watchMu.Unlock()
}

func (g *Registry) notify(r Record, deleted bool) {
	g.watchMu.Lock()
	ws := g.watchers
	g.watchMu.Unlock()
	for _, fn := range ws {
		fn(r, deleted)
	}
}

// NewKey makes a random publish key.
func NewKey() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Create validates and stores a new stream. An empty key is generated.
func (g *Registry) Create(ctx context.Context, r Record) (Record, error) {
	if r.ID == "" {
		r.ID = strings.ToLower(NewKey()[:10])
		r.ID = strings.NewReplacer("_", "x", "-", "y").Replace(r.ID)
	}
	if !ValidID(r.ID) {
		return Record{}, fmt.Errorf("%w: id must be 1-64 letters, digits, - or _", errInvalid)
	}
	if len(r.Title) > 200 {
		return Record{}, fmt.Errorf("%w: title is longer than 200 characters", errInvalid)
	}
	if r.Source != "" {
		u, err := url.Parse(r.Source)
		if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
			return Record{}, fmt.Errorf("%w: source must be an rtsp:// URL", errInvalid)
		}
	}
	if r.PublishKey == "" {
		r.PublishKey = NewKey()
	}
	r.CreatedAt = time.Now().UTC()
	if err := g.Store.Create(ctx, r); err != nil {
		return Record{}, err
	}
	g.notify(r, false)
	return r, nil
}

var errInvalid = errors.New("invalid stream")

// Get reads a record. Records are immutable but for deletion, so they are
// cached: ingest and playback look one up per session.
func (g *Registry) Get(ctx context.Context, id string) (Record, error) {
	g.cacheMu.RLock()
	c, ok := g.cache[id]
	g.cacheMu.RUnlock()
	if ok && (g.CacheTTL == 0 || time.Since(c.at) < g.CacheTTL) {
		return c.r, nil
	}
	r, err := g.Store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		g.cacheMu.Lock()
		delete(g.cache, id)
		g.cacheMu.Unlock()
	}
	if err != nil {
		return Record{}, err
	}
	g.cacheMu.Lock()
	g.cache[id] = cached{r: r, at: time.Now()}
	g.cacheMu.Unlock()
	return r, nil
}

// Delete removes a stream.
func (g *Registry) Delete(ctx context.Context, id string) error {
	r, err := g.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := g.Store.Delete(ctx, id); err != nil {
		return err
	}
	g.cacheMu.Lock()
	delete(g.cache, id)
	g.cacheMu.Unlock()
	g.notify(r, true)
	return nil
}

// List returns every record.
func (g *Registry) List(ctx context.Context) ([]Record, error) { return g.Store.List(ctx) }

// StreamExists implements the sfu's Registry.
func (g *Registry) StreamExists(ctx context.Context, id string) (bool, error) {
	_, err := g.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// EnsureDemo creates the stream id if it does not exist and returns it.
func (g *Registry) EnsureDemo(ctx context.Context, id, title string) (Record, bool, error) {
	r, err := g.Get(ctx, id)
	if err == nil {
		return r, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Record{}, false, err
	}
	r, err = g.Create(ctx, Record{ID: id, Title: title})
	if errors.Is(err, ErrExists) {
		r, err = g.Get(ctx, id)
		return r, false, err
	}
	return r, err == nil, err
}

type view struct {
	Record
	Status
}

func (g *Registry) view(r Record) view {
	v := view{Record: r}
	if g.Status != nil {
		v.Status = g.Status(r.ID)
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	return v
}

// Register mounts /api/streams.
func (g *Registry) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/streams", g.handleCreate)
	mux.HandleFunc("GET /api/streams", g.handleList)
	mux.HandleFunc("GET /api/streams/{id}", g.handleGet)
	mux.HandleFunc("DELETE /api/streams/{id}", g.handleDelete)
	mux.Handle("GET /api/streams/{id}/public", g.RequireViewer(http.HandlerFunc(g.handlePublic)))
	mux.HandleFunc("POST /api/streams/{id}/links", g.handleLink)
}

func (g *Registry) handleCreate(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, g.StaffToken) {
		return
	}
	var in struct {
		ID      string `json:"id"`
		Title   string `json:"title"`
		Source  string `json:"source"`
		Private bool   `json:"private"`
	}
	if !httpx.DecodeJSON(w, r, 16<<10, &in) {
		return
	}
	rec, err := g.Create(r.Context(), Record{ID: in.ID, Title: in.Title, Source: in.Source, Private: in.Private})
	switch {
	case errors.Is(err, errInvalid):
		httpx.WriteError(w, http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, ErrExists):
		httpx.WriteError(w, http.StatusConflict, "exists", "a stream with id "+in.ID+" already exists")
	case httpx.WriteStoreUnavailable(w, err):
	case err != nil:
		g.Logger.Error("create stream", "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not store the stream")
	default:
		httpx.WriteJSON(w, http.StatusCreated, g.view(rec))
	}
}

func (g *Registry) handleList(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, g.StaffToken) {
		return
	}
	recs, err := g.List(r.Context())
	if httpx.WriteStoreUnavailable(w, err) {
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not list streams")
		return
	}
	out := make([]view, 0, len(recs))
	for _, rec := range recs {
		out = append(out, g.view(rec))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"streams": out})
}

// lookupStream reads the record of stream id, or writes the error.
func (g *Registry) lookupStream(w http.ResponseWriter, r *http.Request, id string) (Record, bool) {
	rec, err := g.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no stream "+id)
		return rec, false
	}
	if httpx.WriteStoreUnavailable(w, err) {
		return rec, false
	}
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not read the stream")
		return rec, false
	}
	return rec, true
}

func (g *Registry) handleGet(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, g.StaffToken) {
		return
	}
	if rec, ok := g.lookupStream(w, r, r.PathValue("id")); ok {
		httpx.WriteJSON(w, http.StatusOK, g.view(rec))
	}
}

// handlePublic is what players may read: no key, no source URL (behind
// RequireViewer: a private stream's title is not public).
func (g *Registry) handlePublic(w http.ResponseWriter, r *http.Request) {
	rec, ok := g.lookupStream(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	v := g.view(rec)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": rec.ID, "title": rec.Title, "live": v.Live, "viewers": v.Viewers})
}

func (g *Registry) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, g.StaffToken) {
		return
	}
	err := g.Delete(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no stream "+r.PathValue("id"))
		return
	}
	if httpx.WriteStoreUnavailable(w, err) {
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not delete the stream")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
