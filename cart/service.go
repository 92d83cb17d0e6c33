package cart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Notifier receives stock and order events; cmd/streamd wires it to the
// overlay. StockChanged is only a "dirty" signal: re-read Available. Calls
// come from one goroutine of the Service, never from the checkout path.
type Notifier interface {
	StockChanged(productID string)
	OrderChanged(o Order)
}

// Service is the cart component: catalog, holds, carts, orders, payments.
// Configure the exported fields, then Initialize; Close stops it.
type Service struct {
	Store Store
	// Payments is the provider; nil means the dev provider (test mode).
	Payments Provider
	// StripeWebhookSecret verifies POST /api/stripe/webhook; when empty and
	// Payments is a *StripeProvider, its WebhookSecret is used.
	StripeWebhookSecret string
	StaffToken          string
	// HoldTTL is how long add-to-cart and checkout hold stock (default 10 min).
	HoldTTL time.Duration
	// SweepInterval is how often expired holds and orders are swept (default 1 s).
	SweepInterval time.Duration
	// MaxBody caps request bodies (default 64 KiB).
	MaxBody  int64
	Notifier Notifier
	// Products hears of catalog edits (nil: nobody).
	Products   ProductNotifier
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock (default time.Now); tests may set it.
	Now func() time.Time
	// Signer signs the buyer cookie (internal/signer in the app).
	Signer BuyerSigner
	// Mailer sends receipts (nil: none are sent); PublicURL is the base of
	// the order links they carry.
	Mailer    Mailer
	PublicURL func() string

	log     *slog.Logger
	m       *metrics
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dirtyMu sync.Mutex
	dirty   map[string]struct{}
	// dealEnds: deals set on this node, by product, until they end; the
	// sweeper tells viewers when one ends (what can be bought changes).
	dealEnds  map[string]time.Time
	dirtySig  chan struct{}
	orderEvts chan Order
	mails     chan mailJob
	cartLocks [64]sync.Mutex
	closeOnce sync.Once
}

type metrics struct {
	checkouts   *prometheus.CounterVec
	holdsActive prometheus.Gauge
	orders      *prometheus.CounterVec
	latency     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_cart_checkouts_total",
			Help: "Checkouts by outcome (created, replayed, sold_out, limit, invalid, unavailable, error)."}, []string{"outcome"}),
		holdsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_cart_holds_active",
			Help: "Live stock holds (as of the last sweep)."}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_cart_orders_total",
			Help: "Orders entering each state."}, []string{"state"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamd_cart_checkout_seconds",
			Help: "Checkout latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.checkouts, m.holdsActive, m.orders, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("cart metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Initialize checks the configuration and starts the sweeper and the
// notifier goroutine.
func (s *Service) Initialize() error {
	if s.Store == nil {
		return errors.New("cart: Store is required")
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.Payments == nil {
		s.Payments = DevProvider{}
	}
	if s.Payments.Name() == "dev" {
		s.log.Warn("cart: dev payment provider — TEST MODE, orders are marked paid without charging anyone")
	}
	if sp, ok := s.Payments.(*StripeProvider); ok && s.StripeWebhookSecret == "" {
		s.StripeWebhookSecret = sp.cfg.WebhookSecret
	}
	if s.HoldTTL <= 0 {
		s.HoldTTL = 10 * time.Minute
	}
	if s.SweepInterval <= 0 {
		s.SweepInterval = time.Second
	}
	if s.MaxBody <= 0 {
		s.MaxBody = 64 << 10
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	m, err := newMetrics(s.Registerer)
	if err != nil {
		return err
	}
	s.m = m
	s.dirty = map[string]struct{}{}
	s.dealEnds = map[string]time.Time{}
	s.dirtySig = make(chan struct{}, 1)
	s.orderEvts = make(chan Order, 1024)
	s.mails = make(chan mailJob, 1024)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.sweeper()
	go s.notifier()
	if s.Mailer != nil {
		s.wg.Add(1)
		go s.mailer()
	}
	return nil
}

// Close stops the sweeper and the notifier. The Store is not closed.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
			s.wg.Wait()
		}
	})
	return nil
}

func (s *Service) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.SweepOnce(s.ctx)
		}
	}
}

// SweepOnce returns expired holds to stock and expires pending orders whose
// holds ran out (the sweeper calls it every SweepInterval).
func (s *Service) SweepOnce(ctx context.Context) {
	now := s.Now()
	changed, active, err := s.Store.Sweep(ctx, now)
	if err != nil {
		s.log.Error("cart: sweep holds", "err", err)
	}
	s.m.holdsActive.Set(float64(active))
	for _, p := range changed {
		s.stockChanged(p)
	}
	for _, p := range s.endedDeals(now) {
		s.stockChanged(p)
	}
	ids, err := s.Store.ExpiredOrders(ctx, now, 500)
	if err != nil {
		s.log.Error("cart: expired orders", "err", err)
		return
	}
	for _, id := range ids {
		if _, err := s.endOrder(ctx, id, StatusExpired); err != nil && !errors.Is(err, ErrIllegalTransition) {
			s.log.Error("cart: expire order", "order", id, "err", err)
		}
	}
}

func (s *Service) notifier() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.dirtySig:
			s.dirtyMu.Lock()
			d := s.dirty
			s.dirty = map[string]struct{}{}
			s.dirtyMu.Unlock()
			if s.Notifier != nil {
				for p := range d {
					s.Notifier.StockChanged(p)
				}
			}
		case o := <-s.orderEvts:
			if s.Notifier != nil {
				s.Notifier.OrderChanged(o)
			}
		}
	}
}

func (s *Service) stockChanged(pid string) {
	if s.Notifier == nil {
		return
	}
	s.dirtyMu.Lock()
	s.dirty[pid] = struct{}{}
	s.dirtyMu.Unlock()
	select {
	case s.dirtySig <- struct{}{}:
	default:
	}
}

func (s *Service) orderChanged(o Order) {
	s.m.orders.WithLabelValues(string(o.Status)).Inc()
	if s.Notifier == nil {
		return
	}
	select {
	case s.orderEvts <- o:
	default:
		s.log.Warn("cart: order event dropped (notifier slow)", "order", o.ID)
	}
}
