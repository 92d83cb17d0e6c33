// Package app assembles a streamd server from its packages: it is what
// cmd/streamd runs and what end-to-end tests start in-process (two apps can
// run side by side in one test process).
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/acme/autocert"

	"github.com/streamd/streamd/cart"
	"github.com/streamd/streamd/egress"
	"github.com/streamd/streamd/egress/hls"
	"github.com/streamd/streamd/egress/record"
	"github.com/streamd/streamd/images"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/mail"
	"github.com/streamd/streamd/internal/rtc"
	"github.com/streamd/streamd/internal/signer"
	"github.com/streamd/streamd/internal/turn"
	"github.com/streamd/streamd/internal/whipx"
	"github.com/streamd/streamd/overlay"
	"github.com/streamd/streamd/sfu"
	"github.com/streamd/streamd/sfu/sfumetrics"
	"github.com/streamd/streamd/showroom"
	"github.com/streamd/streamd/streams"
	"github.com/streamd/streamd/web"
)

// App is one running streamd server.
type App struct {
	Config   Config
	Logger   *slog.Logger
	Streams  *streams.Registry
	SFU      *sfu.SFU
	WHEP     *egress.WHEP
	WHIP     *ingest.WHIP
	Cart     *cart.Service
	Overlay  *overlay.Server
	Showroom *showroom.Server
	// Mail sends receipts (SMTP or the outbox folder).
	Mail *mail.Sender
	// Images stores and serves uploaded product photos.
	Images *images.Server
	// Signer signs viewer/buyer cookies and private-stream links.
	Signer  *signer.Signer
	cluster *cluster
	// RTSP is the RTSP server (nil when --rtsp is empty); RTSPPull pulls
	// the streams that name an rtsp:// source.
	RTSP     *ingest.RTSPServer
	RTSPPull *ingest.RTSPPull
	// Recorder records every show (nil with --record=false).
	Recorder *record.Recorder
	// HLS serves LL-HLS of live streams.
	HLS *hls.Live

	db       *bolt.DB
	rdb      *redis.Client
	redisBus *overlay.RedisBus // nil: the in-process bus
	net      *rtc.WebRTC
	turn     *turn.Server // nil unless --turn
	reg      *prometheus.Registry
	mux      *http.ServeMux
	// tlsConfig is set for HTTPS (files or ACME); acme and acmeLn with ACME.
	tlsConfig *tls.Config
	acme      *autocert.Manager
	acmeLn    net.Listener
	httpLn    net.Listener
	httpSrv   *http.Server
	closers   []func()
	previews  previews
	closeMu   sync.Once
	serveErr  chan error
}

// New builds the server from cfg; nothing listens until Start.
func New(cfg Config, logger *slog.Logger) (_ *App, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &App{Config: cfg, Logger: logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux(), serveErr: make(chan error, 1)}
	// A partial start is undone: what was opened so far is closed (a, not
	// the result, which is nil on error).
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, storeFailure(cfg.Data, err)
	}
	if err := a.initTLS(); err != nil {
		return nil, err
	}
	if a.Config.StaffToken == "" {
		if a.Config.StaffToken, err = loadOrCreateToken(filepath.Join(cfg.Data, "staff-token")); err != nil {
			return nil, err
		}
	}
	a.db, err = bolt.Open(filepath.Join(cfg.Data, "streamd.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, storeFailure(cfg.Data, err)
	}
	a.closers = append(a.closers, func() { _ = a.db.Close() })
	if cfg.Redis != "" {
		opt, err := redis.ParseURL(cfg.Redis)
		if err != nil {
			return nil, redisFailure(cfg.Redis, true, err)
		}
		a.rdb = redis.NewClient(opt)
		a.closers = append(a.closers, func() { _ = a.rdb.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			return nil, redisFailure(cfg.Redis, false, err)
		}
	}

	// One signing key for cookies and viewer links; shared via Redis in a cluster.
	var key []byte
	if a.rdb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		key, err = signer.SharedKey(ctx, a.rdb)
		cancel()
	} else {
		key, err = signer.LoadOrCreateKey(filepath.Join(cfg.Data, "signing-key"))
	}
	if err != nil {
		return nil, err
	}
	if a.Signer, err = signer.New(key); err != nil {
		return nil, err
	}

	// Streams registry.
	var store streams.Store
	if a.rdb != nil {
		store = streams.NewRedisStore(a.rdb)
	} else if store, err = streams.NewBoltStore(a.db); err != nil {
		return nil, err
	}
	a.Streams = &streams.Registry{Store: store, StaffToken: a.Config.StaffToken, Links: a.Signer, Logger: logger.With("pkg", "streams")}
	if a.rdb != nil {
		a.Streams.CacheTTL = 5 * time.Second // records may be deleted by another node
	}
	if err := a.Streams.Initialize(); err != nil {
		return nil, err
	}

	// Media: one UDP port, the sfu, WHEP egress, WHIP ingest.
	a.net, err = rtc.New(rtc.NetConfig{UDPAddr: cfg.WebRTCUDP, TCPAddr: cfg.WebRTCTCP, AdvertiseIPs: cfg.WebRTCIPs, LoopbackOnly: cfg.LoopbackOnly, GSO: !cfg.WebRTCNoGSO})
	if err != nil {
		return nil, listenFailure("WebRTC UDP", "--webrtc-udp", cfg.WebRTCUDP, err)
	}
	a.closers = append(a.closers, func() { _ = a.net.Close() })
	if !cfg.WebRTCNoGSO && !a.net.Batch().GSO() {
		logger.Info("webrtc: this kernel has no UDP segmentation offload (Linux 4.18+); fan-out sends go datagram by datagram in sendmmsg batches")
	}
	if err := a.initTURN(key); err != nil {
		return nil, err
	}
	transports := whipx.NewTransports(a.reg)
	a.SFU = &sfu.SFU{Batch: a.net.Batch(), Logger: logger.With("pkg", "sfu")}
	if err := a.SFU.Initialize(); err != nil {
		return nil, err
	}
	sfumetrics.Register(a.reg, a.SFU)
	a.registerBatchMetrics()
	a.closers = append(a.closers, a.SFU.Close)
	a.WHEP = &egress.WHEP{API: a.net.SubscriberAPI(), Batch: a.net.Batch(), SFU: a.SFU, Registry: a.Streams, ICELinks: a.iceLinks(), Transports: transports, Registerer: a.reg, Logger: logger.With("pkg", "whep")}
	if err := a.WHEP.Initialize(); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.WHEP.Close)
	a.WHIP = &ingest.WHIP{API: a.net.PublisherAPI(), SFU: a.SFU, Auth: publishAuth{a.Streams}, ICELinks: a.iceLinks(), Transports: transports, Logger: logger.With("pkg", "whip")}
	if err := a.WHIP.Initialize(); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.WHIP.Close)
	a.Streams.Status = a.streamStatus
	if err := a.initCommerce(); err != nil {
		return nil, err
	}
	if err := a.initRecording(); err != nil {
		return nil, err
	}
	if err := a.initCluster(); err != nil {
		return nil, err
	}
	if err := a.initRTSP(); err != nil {
		return nil, err
	}
	// A deleted stream ends: its viewers and publisher are closed.
	a.Streams.Watch(func(r streams.Record, deleted bool) {
		if deleted {
			if a.Recorder != nil {
				a.Recorder.EndShow(r.ID)
			}
			a.SFU.RemoveStream(r.ID)
		}
	})

	a.routes()
	return a, nil
}

func (a *App) streamStatus(id string) streams.Status {
	viewers := a.SFU.Subscribers(id) - a.previews.count(id, a.WHEP.HasSession)
	st := streams.Status{Live: a.SFU.Live(id), Viewers: max(0, viewers)}
	a.rtspStatus(id, &st)
	if a.Recorder != nil {
		st.Warnings = append(st.Warnings, a.Recorder.Warnings(id)...)
	}
	return st
}

func (a *App) routes() {
	m := a.mux
	a.Streams.Register(m)
	// Viewing routes of a private stream need a viewer credential
	// (streams.RequireViewer); WHEP's session routes are bound to their
	// unguessable session id instead. Sub-muxes let the guard sit in front
	// of handlers other packages register. The preview recorder marks the
	// console's preview, which is no viewer.
	whepMux := http.NewServeMux()
	a.WHEP.Register(whepMux)
	whep := a.previews.wrap(a.Config.StaffToken, whepMux)
	m.Handle("POST /whep/{stream}", whepCORS(a.Streams.RequireViewer(whep)))
	m.Handle("/whep/", whep)
	a.WHIP.Register(m)
	a.Cart.Register(m)
	// The overlay socket of a stream that does not exist is refused (404)
	// before the upgrade; the overlay itself knows nothing of the registry.
	ovMux := http.NewServeMux()
	a.Overlay.Register(ovMux)
	m.Handle("GET /ws/{stream}", a.Streams.RequireViewer(ovMux))
	a.Showroom.Register(m)
	a.recordRoutes(m)
	a.registerOutbox(m)
	a.Images.Register(m)
	// The player opened with a viewer link keeps it in a cookie for its
	// WHEP and WebSocket calls.
	webMux := http.NewServeMux()
	web.Register(webMux)
	m.Handle("GET /watch/{stream}", a.Streams.KeepLink(webMux))
	m.Handle("GET /replay/{stream}/{show}", a.Streams.KeepLink(webMux))
	m.Handle("/", webMux)
	m.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /api/config", func(w http.ResponseWriter, r *http.Request) {
		payments := "dev"
		if a.Config.StripeKey != "" {
			payments = "stripe"
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"payments": payments, "test_mode": payments == "dev", "stripe_publishable_key": a.Config.StripePublishable, "public_url": a.PublicBase()})
	})
	m.HandleFunc("GET /healthz", a.handleHealthz)
	m.HandleFunc("GET /readyz", a.handleReadyz)
	if a.Config.PProf {
		m.Handle("/debug/pprof/", a.pprofHandler(pprof.Index))
		m.Handle("/debug/pprof/profile", a.pprofHandler(pprof.Profile))
		m.Handle("/debug/pprof/trace", a.pprofHandler(pprof.Trace))
	}
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such API route: "+r.Method+" "+r.URL.Path)
	})
}

// Start listens and serves in the background.
func (a *App) Start() error {
	ln, err := net.Listen("tcp", a.Config.HTTP)
	if err != nil {
		return listenFailure("HTTP", "--http", a.Config.HTTP, err)
	}
	if max := a.Config.MaxConnsPerIP; max >= 0 {
		if max == 0 {
			max = defaultMaxConnsPerIP
		}
		ln = newIPLimitListener(ln, max, a.reg)
	}
	if a.tlsConfig != nil {
		ln = tls.NewListener(ln, a.tlsConfig)
	}
	a.httpLn = ln
	if err := a.startACMEHTTP(); err != nil {
		_ = ln.Close()
		return err
	}
	// Request bodies and responses get per-route deadlines (deadlines());
	// the server bounds the headers and idle keep-alive connections.
	a.httpSrv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: orDefault(a.Config.ReadTimeout, defaultReadTimeout),
		IdleTimeout: orDefault(a.Config.IdleTimeout, defaultIdleTimeout), ErrorLog: slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn)}
	go func() {
		err := a.httpSrv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.serveErr <- err
	}()
	return nil
}

// Handler is the HTTP handler (for httptest servers).
func (a *App) Handler() http.Handler { return a.deadlines(a.mux) }

// HTTPAddr is the bound HTTP address.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// BaseURL is http(s)://<bound address>.
func (a *App) BaseURL() string {
	if a.tlsConfig != nil {
		return "https://" + a.HTTPAddr()
	}
	return "http://" + a.HTTPAddr()
}

// UDPAddr is the bound WebRTC UDP address.
func (a *App) UDPAddr() string { return a.net.LocalAddr().String() }

// Errors reports a failure of the HTTP server.
func (a *App) Errors() <-chan error { return a.serveErr }

// Close shuts down gracefully: HTTP first, then peers, then the store.
func (a *App) Close() {
	a.closeMu.Do(func() {
		if a.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = a.httpSrv.Shutdown(ctx)
			cancel()
		}
		for i := len(a.closers) - 1; i >= 0; i-- {
			a.closers[i]()
		}
	})
}

// whepCORS lets a refusal of a cross-origin player's WHEP offer (a private
// stream) be read by that player.
func whepCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		whipx.CORS(w, r)
		next.ServeHTTP(w, r)
	})
}

// publishAuth adapts the registry to ingest.Auth.
type publishAuth struct{ reg *streams.Registry }

func (p publishAuth) CheckPublish(ctx context.Context, stream, key string) error {
	rec, err := p.reg.Get(ctx, stream)
	if errors.Is(err, streams.ErrNotFound) {
		return ingest.ErrUnknownStream
	}
	if err != nil {
		return err
	}
	if !httpx.TokenEqual(key, rec.PublishKey) {
		return ingest.ErrBadKey
	}
	return nil
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write staff token: %w", err)
	}
	return t, nil
}

// registerBatchMetrics exports how the WebRTC socket's sends are batched.
func (a *App) registerBatchMetrics() {
	b := a.net.Batch()
	stat := func(i int) func() float64 {
		return func() float64 {
			s, n, e, t := b.Stats()
			return float64([]uint64{s, n, e, t}[i])
		}
	}
	a.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "streamd_webrtc_batched_datagrams_total", Help: "UDP datagrams sent in sendmmsg batches (fan-out passes)."}, stat(0)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "streamd_webrtc_send_batches_total", Help: "sendmmsg calls."}, stat(1)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "streamd_webrtc_batch_errors_total", Help: "Datagrams of a batch the kernel refused."}, stat(2)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "streamd_webrtc_gso_trains_total", Help: "Datagram trains sent with UDP segmentation offload (one send for a frame's packets to one viewer)."}, stat(3)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "streamd_webrtc_gso", Help: "1 while fan-out sends use UDP segmentation offload (--webrtc-gso, and the kernel takes it)."}, func() float64 {
			if b.GSO() {
				return 1
			}
			return 0
		}),
	)
}
