package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/egress/record"
	"github.com/streamd/streamd/internal/httpx"
)

// In a cluster a show is recorded on the node its stream was published on,
// and its files stay there. Behind a load balancer the console and the
// replay page may reach any node, so every node answers for every show:
// the recording node indexes each new show in Redis (stream → show → node
// URL), the show list merges the lists of the nodes that recorded the
// stream, and a node asked for a show it does not keep passes the request
// to the node that does.

func showsKey(stream string) string { return "streamd:shows:" + stream }

// hopHeader marks a request one node passed to another: it is answered
// locally, never passed on again.
const hopHeader = "X-Streamd-Hop"

// showIndex writes the index entries of new shows. Recorder.OnShow must not
// block, so entries go through a queue drained by one goroutine, which
// retries while Redis is away.
type showIndex struct {
	c    *cluster
	q    chan [2]string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	proxies map[string]*httputil.ReverseProxy // by node URL
	client  *http.Client
}

func (c *cluster) startShowIndex() *showIndex {
	x := &showIndex{c: c, q: make(chan [2]string, 256), stop: make(chan struct{}), done: make(chan struct{}),
		proxies: map[string]*httputil.ReverseProxy{}, client: &http.Client{Timeout: 5 * time.Second}}
	go x.run()
	return x
}

// add queues the index entry of a new show (Recorder.OnShow).
func (x *showIndex) add(stream, show string) {
	select {
	case x.q <- [2]string{stream, show}:
	default:
		x.c.a.Logger.Warn("cluster: show index queue full; the show is listed only on its node", "stream", stream, "show", show)
	}
}

func (x *showIndex) run() {
	defer close(x.done)
	for {
		select {
		case <-x.stop:
			return
		case e := <-x.q:
			for attempt := 0; ; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := x.c.a.rdb.HSet(ctx, showsKey(e[0]), e[1], x.c.a.Config.NodeURL).Err()
				cancel()
				if err == nil {
					break
				}
				if attempt == 0 {
					x.c.a.Logger.Warn("cluster: index show", "stream", e[0], "show", e[1], "err", err)
				}
				select {
				case <-x.stop:
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

func (x *showIndex) close() {
	close(x.stop)
	<-x.done
}

// node is the URL of the node that keeps the show ("" when unknown).
func (x *showIndex) node(ctx context.Context, stream, show string) (string, error) {
	n, err := x.c.a.rdb.HGet(ctx, showsKey(stream), show).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return n, err
}

func (x *showIndex) proxy(node string) (*httputil.ReverseProxy, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.proxies[node]; p != nil {
		return p, nil
	}
	u, err := url.Parse(node)
	if err != nil {
		return nil, fmt.Errorf("node url %q: %w", node, err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	rewrite := p.Director
	p.Director = func(r *http.Request) {
		rewrite(r)
		r.Host = u.Host
		r.Header.Set(hopHeader, "1")
	}
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		x.c.a.Logger.Warn("cluster: pass show request", "node", node, "path", r.URL.Path, "err", err)
		httpx.WriteError(w, http.StatusBadGateway, "node_unreachable", "the node that recorded this show does not answer; retry shortly")
	}
	x.proxies[node] = p
	return p, nil
}

// showRoute serves a request about one show (replay files, delete) from
// this node when it keeps the show, else from the node that does.
func (x *showIndex) showRoute(streamParam string, local http.Handler) http.Handler {
	rec := x.c.a.Recorder
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream, show := r.PathValue(streamParam), r.PathValue("show")
		if r.Header.Get(hopHeader) != "" || rec.Has(stream, show) {
			local.ServeHTTP(w, r)
			return
		}
		node, err := x.node(r.Context(), stream, show)
		if err != nil {
			httpx.WriteStoreUnavailable(w, fmt.Errorf("%w: %w", httpx.ErrStoreUnavailable, err))
			return
		}
		if node == "" || node == x.c.a.Config.NodeURL {
			local.ServeHTTP(w, r) // not found here either: the local 404
			return
		}
		p, err := x.proxy(node)
		if err != nil {
			local.ServeHTTP(w, r)
			return
		}
		p.ServeHTTP(w, r)
	})
}

// listRoute serves GET /api/streams/{id}/shows: this node's shows and
// those of every node that recorded the stream, newest first. A node that
// does not answer is left out and named in the Streamd-Partial header.
func (x *showIndex) listRoute(local http.Handler) http.Handler {
	rec := x.c.a.Recorder
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(hopHeader) != "" {
			local.ServeHTTP(w, r)
			return
		}
		if !httpx.RequireStaff(w, r, x.c.a.Config.StaffToken) {
			return
		}
		stream := r.PathValue("id")
		shows, err := rec.Shows(stream)
		if errors.Is(err, record.ErrNotFound) {
			httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no shows for that stream id")
			return
		}
		if err != nil {
			local.ServeHTTP(w, r) // the local handler logs and answers
			return
		}
		index, err := x.c.a.rdb.HGetAll(r.Context(), showsKey(stream)).Result()
		if err != nil {
			httpx.WriteStoreUnavailable(w, fmt.Errorf("%w: %w", httpx.ErrStoreUnavailable, err))
			return
		}
		nodes := map[string]bool{}
		for _, n := range index {
			if n != x.c.a.Config.NodeURL {
				nodes[n] = true
			}
		}
		var partial []string
		for n := range nodes {
			remote, err := x.remoteShows(r.Context(), n, stream, r.Header.Get("Authorization"))
			if err != nil {
				x.c.a.Logger.Warn("cluster: list shows of a node", "node", n, "stream", stream, "err", err)
				partial = append(partial, n)
				continue
			}
			shows = append(shows, remote...)
		}
		sort.Slice(shows, func(i, j int) bool { return shows[i].StartedAt.After(shows[j].StartedAt) })
		if len(partial) > 0 {
			sort.Strings(partial)
			for _, n := range partial {
				w.Header().Add("Streamd-Partial", n)
			}
		}
		httpx.WriteJSON(w, http.StatusOK, shows)
	})
}

func (x *showIndex) remoteShows(ctx context.Context, node, stream, auth string) ([]record.Show, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/api/streams/"+url.PathEscape(stream)+"/shows", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set(hopHeader, "1")
	res, err := x.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", node, res.StatusCode)
	}
	var shows []record.Show
	if err := json.NewDecoder(res.Body).Decode(&shows); err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	return shows, nil
}
