package cart

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
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
	MaxBody    int64
	Notifier   Notifier
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock (default time.Now); tests may set it.
	Now func() time.Time

	log       *slog.Logger
	m         *metrics
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	dirtyMu   sync.Mutex
	dirty     map[string]struct{}
	dirtySig  chan struct{}
	orderEvts chan Order
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
			Help: "Checkouts by outcome (created, replayed, sold_out, limit, invalid, error)."}, []string{"outcome"}),
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
	s.dirtySig = make(chan struct{}, 1)
	s.orderEvts = make(chan Order, 1024)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.sweeper()
	go s.notifier()
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

// ---- catalog ----

// ProductInput is the body of POST /api/products.
type ProductInput struct {
	ID            string     `json:"id"`
	Title         string     `json:"title"`
	Description   string     `json:"description,omitempty"`
	Images        []string   `json:"images,omitempty"`
	Price         Money      `json:"price"`
	Stock         int        `json:"stock"`
	Active        *bool      `json:"active,omitempty"`
	PerBuyerLimit int        `json:"per_buyer_limit,omitempty"`
	SKUs          []SKUInput `json:"skus,omitempty"`
}

// SKUInput is one SKU of a ProductInput.
type SKUInput struct {
	ID      string            `json:"id"`
	Title   string            `json:"title,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	Stock   int               `json:"stock"`
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func checkMoney(m *Money) error {
	m.Currency = strings.ToLower(m.Currency)
	if !currencyRE.MatchString(m.Currency) {
		return invalid("price.currency must be an ISO 4217 code like \"eur\"")
	}
	if m.Amount < 0 || m.Amount > 1e11 {
		return invalid("price.amount must be a non-negative integer in minor units")
	}
	return nil
}

// CreateProduct validates and stores a product (active unless said otherwise).
func (s *Service) CreateProduct(ctx context.Context, in ProductInput) (Product, error) {
	if !ValidID(in.ID) {
		return Product{}, invalid("id must be 1-64 letters, digits, '_', '-' or '.'")
	}
	if in.Title == "" || len(in.Title) > 200 {
		return Product{}, invalid("title is required (at most 200 characters)")
	}
	if err := checkMoney(&in.Price); err != nil {
		return Product{}, err
	}
	if in.Stock < 0 || in.PerBuyerLimit < 0 {
		return Product{}, invalid("stock and per_buyer_limit must not be negative")
	}
	if len(in.Images) > 20 || len(in.SKUs) > 200 {
		return Product{}, invalid("at most 20 images and 200 SKUs")
	}
	p := Product{ID: in.ID, Title: in.Title, Description: in.Description, Images: in.Images, Price: in.Price,
		Active: in.Active == nil || *in.Active, PerBuyerLimit: in.PerBuyerLimit}
	if p.Images == nil {
		p.Images = []string{}
	}
	if len(in.SKUs) == 0 {
		p.SKUs = []SKU{{ID: DefaultSKU, Stock: in.Stock}}
	}
	seen := map[string]bool{}
	for _, k := range in.SKUs {
		if !ValidID(k.ID) || seen[k.ID] {
			return Product{}, invalid("sku ids must be unique, 1-64 letters, digits, '_', '-' or '.'")
		}
		if k.Stock < 0 {
			return Product{}, invalid("sku stock must not be negative")
		}
		seen[k.ID] = true
		p.SKUs = append(p.SKUs, SKU{ID: k.ID, Title: k.Title, Options: k.Options, Stock: k.Stock})
	}
	if err := s.Store.CreateProduct(ctx, p); err != nil {
		return Product{}, err
	}
	s.stockChanged(p.ID)
	return s.Store.GetProduct(ctx, p.ID)
}

// UpdateProduct applies a partial update.
func (s *Service) UpdateProduct(ctx context.Context, id string, u ProductUpdate) (Product, error) {
	if u.Price != nil {
		if err := checkMoney(u.Price); err != nil {
			return Product{}, err
		}
	}
	for _, n := range u.Stock {
		if n < 0 {
			return Product{}, invalid("stock must not be negative")
		}
	}
	if u.PerBuyerLimit != nil && *u.PerBuyerLimit < 0 {
		return Product{}, invalid("per_buyer_limit must not be negative")
	}
	p, err := s.Store.UpdateProduct(ctx, id, u)
	if err != nil {
		return Product{}, err
	}
	s.stockChanged(id)
	return p, nil
}

// GetProduct returns a product with availability and its active deal.
func (s *Service) GetProduct(ctx context.Context, id string) (Product, error) {
	return s.Store.GetProduct(ctx, id)
}

// ListProducts returns the catalog.
func (s *Service) ListProducts(ctx context.Context) ([]Product, error) {
	return s.Store.ListProducts(ctx)
}

// Available is the product's units for sale now (all SKUs).
func (s *Service) Available(ctx context.Context, productID string) (int, error) {
	p, err := s.Store.GetProduct(ctx, productID)
	if err != nil {
		return 0, err
	}
	// During a capped flash deal what a viewer can buy now is what is left
	// of the deal: "sold out" must reach every screen when the cap is hit.
	if d := p.Deal; d != nil && d.Active(s.Now()) && d.Quantity > 0 {
		return min(p.Available, max(0, d.Quantity-d.Used)), nil
	}
	return p.Available, nil
}

// SetDeal starts a flash deal on a product, replacing any other.
func (s *Service) SetDeal(ctx context.Context, productID string, d Deal) error {
	if err := checkMoney(&d.Price); err != nil {
		return err
	}
	if d.Quantity < 0 || d.PerBuyer < 0 || d.HoldTTL < 0 {
		return invalid("deal quantity, per_buyer and hold ttl must not be negative")
	}
	if !d.EndsAt.After(s.Now()) {
		return invalid("deal ends_at must be in the future")
	}
	if _, err := s.Store.SetDeal(ctx, productID, d); err != nil {
		return err
	}
	s.stockChanged(productID)
	// When the deal ends, what can be bought changes again (the cap no
	// longer applies): tell viewers then too.
	time.AfterFunc(d.EndsAt.Sub(s.Now())+50*time.Millisecond, func() { s.stockChanged(productID) })
	return nil
}

// ClearDeal ends a product's deal.
func (s *Service) ClearDeal(ctx context.Context, productID string) error {
	if err := s.Store.ClearDeal(ctx, productID); err != nil {
		return err
	}
	s.stockChanged(productID)
	return nil
}

// SeedDemo creates a small demo catalog; products that exist are left alone.
func (s *Service) SeedDemo(ctx context.Context) error {
	yes := true
	demo := []ProductInput{
		{ID: "tee-classic", Title: "Classic tee", Description: "Organic cotton T-shirt", Images: []string{"/static/demo/tee.jpg"},
			Price: Money{Amount: 2900, Currency: "eur"}, Active: &yes, SKUs: []SKUInput{
				{ID: "tee-s-black", Title: "S / black", Options: map[string]string{"size": "S", "colour": "black"}, Stock: 20},
				{ID: "tee-m-black", Title: "M / black", Options: map[string]string{"size": "M", "colour": "black"}, Stock: 30},
				{ID: "tee-l-white", Title: "L / white", Options: map[string]string{"size": "L", "colour": "white"}, Stock: 25},
			}},
		{ID: "mug-studio", Title: "Studio mug", Description: "Stoneware mug, 350 ml", Images: []string{"/static/demo/mug.jpg"},
			Price: Money{Amount: 1500, Currency: "eur"}, Stock: 50, Active: &yes},
		{ID: "sneaker-drop", Title: "Limited sneaker", Description: "Numbered drop, one pair per buyer", Images: []string{"/static/demo/sneaker.jpg"},
			Price: Money{Amount: 12900, Currency: "eur"}, Stock: 10, PerBuyerLimit: 1, Active: &yes},
	}
	for _, p := range demo {
		if _, err := s.CreateProduct(ctx, p); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("seed %s: %w", p.ID, err)
		}
	}
	return nil
}

// ---- checkout ----

// CheckoutItem is one line of a buy-now checkout.
type CheckoutItem struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku,omitempty"`
	Quantity  int    `json:"quantity"`
}

// CheckoutRequest checks out a cart (CartID) or items (buy-now).
type CheckoutRequest struct {
	IdempotencyKey string
	Buyer          string
	CartID         string
	Items          []CheckoutItem
	Stream         string
	Card           string
	Source         string
}

// Checkout places holds and creates an order (idempotent per key). It
// returns the order and whether it was created now (false: a replay).
func (s *Service) Checkout(ctx context.Context, req CheckoutRequest) (o Order, created bool, err error) {
	start := time.Now()
	defer func() {
		s.m.latency.Observe(time.Since(start).Seconds())
		s.m.checkouts.WithLabelValues(outcome(created, err)).Inc()
	}()
	if req.IdempotencyKey == "" || len(req.IdempotencyKey) > 255 {
		return Order{}, false, invalid("an Idempotency-Key header (1-255 characters) is required")
	}
	if req.Source != "" && req.Source != "player" && req.Source != "showroom" {
		return Order{}, false, invalid("source must be \"player\" or \"showroom\"")
	}
	if len(req.Stream) > 128 || len(req.Card) > 128 {
		return Order{}, false, invalid("stream and card are at most 128 characters")
	}
	if prev, err := s.Store.OrderByKey(ctx, req.IdempotencyKey); err == nil {
		return prev, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Order{}, false, err
	}
	type line struct {
		pid, sku, hold string
		qty            int
	}
	var lines []line
	fromCart := req.CartID != ""
	if fromCart {
		if len(req.Items) > 0 {
			return Order{}, false, invalid("send either cart_id or items, not both")
		}
		c, err := s.Store.GetCart(ctx, req.CartID)
		if err != nil {
			return Order{}, false, fmt.Errorf("cart: %w", err)
		}
		for _, it := range c.Items {
			lines = append(lines, line{it.ProductID, it.SKU, it.HoldID, it.Quantity})
		}
		if req.Buyer == "" {
			req.Buyer = c.Buyer
		}
	} else {
		kh := hashKey(req.IdempotencyKey)
		idx := map[string]int{}
		for _, it := range req.Items {
			if !ValidID(it.ProductID) || (it.SKU != "" && !ValidID(it.SKU)) {
				return Order{}, false, invalid("product_id and sku must be valid ids")
			}
			if it.Quantity <= 0 || it.Quantity > 1000 {
				return Order{}, false, invalid("quantity must be between 1 and 1000")
			}
			k := it.ProductID + "\x00" + it.SKU
			if i, ok := idx[k]; ok {
				lines[i].qty += it.Quantity
				continue
			}
			idx[k] = len(lines)
			lines = append(lines, line{it.ProductID, it.SKU, fmt.Sprintf("k%s-%d", kh, len(lines)), it.Quantity})
		}
	}
	if len(lines) == 0 || len(lines) > 50 {
		return Order{}, false, invalid("an order needs 1 to 50 items")
	}
	now := s.Now()
	holds := make([]Hold, 0, len(lines))
	release := func() {
		if fromCart {
			return // the cart keeps its holds
		}
		for _, h := range holds {
			if _, err := s.Store.Release(context.WithoutCancel(ctx), h.ProductID, h.ID); err != nil {
				s.log.Error("cart: release after failed checkout", "hold", h.ID, "err", err)
			}
		}
	}
	// fail releases what was reserved unless a concurrent request with the
	// same key made the order (then that order is the answer).
	fail := func(err error) (Order, bool, error) {
		if prev, e := s.Store.OrderByKey(ctx, req.IdempotencyKey); e == nil {
			return prev, false, nil
		}
		release()
		return Order{}, false, err
	}
	for _, l := range lines {
		h, err := s.Store.Reserve(ctx, ReserveRequest{HoldID: l.hold, ProductID: l.pid, SKU: l.sku,
			Quantity: l.qty, Buyer: req.Buyer, TTL: s.HoldTTL, Now: now})
		if err != nil {
			return fail(err)
		}
		holds = append(holds, h)
	}
	o = Order{ID: randomID(), Status: StatusPending, Buyer: req.Buyer, Stream: req.Stream, Card: req.Card,
		Source: req.Source, IdempotencyKey: req.IdempotencyKey, CreatedAt: now, UpdatedAt: now}
	for i, h := range holds {
		if i == 0 {
			o.Total.Currency = h.UnitPrice.Currency
			o.HoldExpiresAt = h.ExpiresAt
		}
		if h.UnitPrice.Currency != o.Total.Currency {
			return fail(invalid("all items of an order must have the same currency"))
		}
		if h.ExpiresAt.Before(o.HoldExpiresAt) {
			o.HoldExpiresAt = h.ExpiresAt
		}
		o.Total.Amount += h.UnitPrice.Amount * int64(h.Quantity)
		o.Items = append(o.Items, OrderItem{ProductID: h.ProductID, SKU: h.SKU, Quantity: h.Quantity,
			UnitPrice: h.UnitPrice, Deal: h.DealID != "", HoldID: h.ID})
	}
	pay, paid, err := s.Payments.Authorize(ctx, &o)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", errPayment, err))
	}
	o.Payment = pay
	o, created, err = s.Store.CreateOrder(ctx, o)
	if err != nil {
		return fail(err)
	}
	if !created {
		return o, false, nil
	}
	s.orderChanged(o)
	for _, h := range holds {
		s.stockChanged(h.ProductID)
	}
	if fromCart {
		if err := s.Store.DeleteCart(ctx, req.CartID); err != nil {
			s.log.Warn("cart: delete checked-out cart", "cart", req.CartID, "err", err)
		}
	}
	if paid {
		o, err = s.commitOrder(ctx, o, false)
		if err != nil {
			return o, true, err
		}
	}
	s.log.Info("cart: order", "order", o.ID, "status", o.Status, "total", o.Total.Amount, "currency", o.Total.Currency,
		"provider", o.Payment.Provider, "test_mode", o.Payment.TestMode, "stream", o.Stream)
	return o, true, nil
}

var errPayment = errors.New("payment provider failed")

func outcome(created bool, err error) string {
	var so *SoldOutError
	var le *LimitError
	switch {
	case err == nil && created:
		return "created"
	case err == nil:
		return "replayed"
	case errors.As(err, &so):
		return "sold_out"
	case errors.As(err, &le):
		return "limit"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound), errors.Is(err, ErrInactive),
		errors.Is(err, ErrSKURequired), errors.Is(err, ErrUnknownSKU):
		return "invalid"
	}
	return "error"
}

// commitOrder commits a pending order's holds after the payment was
// authorized; capture=true captures with the provider (Stripe). When a hold
// is gone the authorization is voided and the order expires.
func (s *Service) commitOrder(ctx context.Context, o Order, capture bool) (Order, error) {
	now := s.Now()
	for _, it := range o.Items {
		if _, err := s.Store.Commit(ctx, it.ProductID, it.HoldID, now); err != nil {
			if !errors.Is(err, ErrHoldGone) {
				return o, err
			}
			s.log.Warn("cart: hold gone at payment, voiding", "order", o.ID, "hold", it.HoldID)
			return s.endOrder(ctx, o.ID, StatusExpired)
		}
	}
	if o.Status == StatusPending && capture {
		var err error
		if o, err = s.transition(ctx, o.ID, StatusAuthorized); err != nil {
			return o, err
		}
	}
	if capture {
		if err := s.Payments.Capture(ctx, &o); err != nil {
			return o, err
		}
	}
	return s.transition(ctx, o.ID, StatusPaid)
}

func (s *Service) transition(ctx context.Context, id string, to OrderStatus) (Order, error) {
	changed := false
	o, err := s.Store.UpdateOrder(ctx, id, func(o *Order) error {
		changed = o.Status != to
		if err := o.Transition(to, s.Now()); err != nil {
			return err
		}
		if to == StatusPaid {
			o.Payment.Status = "succeeded"
		}
		return nil
	})
	if err == nil && changed {
		s.orderChanged(o)
	}
	return o, err
}

// endOrder moves an order to cancelled or expired, releases its holds
// (returning sold units to stock) and voids or refunds its payment.
// Repeating it is harmless.
func (s *Service) endOrder(ctx context.Context, id string, to OrderStatus) (Order, error) {
	var before Order
	changed := false
	o, err := s.Store.UpdateOrder(ctx, id, func(o *Order) error {
		before = *o
		changed = o.Status != to
		return o.Transition(to, s.Now())
	})
	if err != nil {
		return o, err
	}
	for _, it := range o.Items {
		if ok, err := s.Store.Release(ctx, it.ProductID, it.HoldID); err != nil {
			return o, err
		} else if ok {
			s.stockChanged(it.ProductID)
		}
	}
	if changed {
		s.orderChanged(o)
		if err := s.Payments.Void(ctx, &before); err != nil {
			s.log.Error("cart: void payment", "order", id, "err", err)
		}
	}
	return o, nil
}

// GetOrder returns an order by id.
func (s *Service) GetOrder(ctx context.Context, id string) (Order, error) {
	return s.Store.GetOrder(ctx, id)
}

// ListOrders lists orders newest first (stream "" = all).
func (s *Service) ListOrders(ctx context.Context, stream string, limit int) ([]Order, error) {
	return s.Store.ListOrders(ctx, stream, limit)
}

// CancelOrder cancels an order (staff): its units go back to stock and an
// authorization is voided, a captured payment refunded.
func (s *Service) CancelOrder(ctx context.Context, id string) (Order, error) {
	return s.endOrder(ctx, id, StatusCancelled)
}

// ---- carts ----

func (s *Service) cartLock(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &s.cartLocks[h.Sum32()%uint32(len(s.cartLocks))]
}

// NewCart creates an empty cart for a buyer.
func (s *Service) NewCart(ctx context.Context, buyer string) (Cart, error) {
	c := Cart{ID: randomID(), Buyer: buyer, Items: []CartItem{}, UpdatedAt: s.Now()}
	return c, s.Store.PutCart(ctx, c)
}

// GetCart returns a cart; lines whose hold expired are dropped from view.
func (s *Service) GetCart(ctx context.Context, id string) (Cart, error) {
	c, err := s.Store.GetCart(ctx, id)
	if err != nil {
		return Cart{}, err
	}
	now := s.Now()
	items := c.Items[:0]
	for _, it := range c.Items {
		if it.ExpiresAt.After(now) {
			items = append(items, it)
		}
	}
	c.Items = items
	c.Total = cartTotal(c.Items)
	return c, nil
}

func cartTotal(items []CartItem) Money {
	var t Money
	for _, it := range items {
		t.Currency = it.UnitPrice.Currency
		t.Amount += it.UnitPrice.Amount * int64(it.Quantity)
	}
	return t
}

// SetCartItem sets the quantity of a product/SKU in a cart (0 removes it),
// placing or re-setting its hold.
func (s *Service) SetCartItem(ctx context.Context, cartID, productID, sku string, qty int) (Cart, error) {
	if !ValidID(productID) || (sku != "" && !ValidID(sku)) {
		return Cart{}, invalid("product_id and sku must be valid ids")
	}
	if qty < 0 || qty > 1000 {
		return Cart{}, invalid("quantity must be between 0 and 1000")
	}
	mu := s.cartLock(cartID)
	mu.Lock()
	defer mu.Unlock()
	c, err := s.GetCart(ctx, cartID)
	if err != nil {
		return Cart{}, err
	}
	p, err := s.Store.GetProduct(ctx, productID)
	if err != nil {
		return Cart{}, err
	}
	k, err := p.sku(sku)
	if err != nil {
		return Cart{}, err
	}
	holdID := "c" + cartID + "-" + k.ID
	idx := -1
	for i, it := range c.Items {
		if it.ProductID == productID && it.SKU == k.ID {
			idx = i
		}
	}
	if qty == 0 {
		if _, err := s.Store.Release(ctx, productID, holdID); err != nil {
			return Cart{}, err
		}
		if idx >= 0 {
			c.Items = append(c.Items[:idx], c.Items[idx+1:]...)
		}
	} else {
		h, err := s.Store.Reserve(ctx, ReserveRequest{HoldID: holdID, ProductID: productID, SKU: k.ID,
			Quantity: qty, Buyer: c.Buyer, TTL: s.HoldTTL, Now: s.Now()})
		if err != nil {
			return Cart{}, err
		}
		it := CartItem{ProductID: productID, SKU: k.ID, Quantity: h.Quantity, UnitPrice: h.UnitPrice,
			Deal: h.DealID != "", HoldID: h.ID, ExpiresAt: h.ExpiresAt}
		if idx >= 0 {
			c.Items[idx] = it
		} else {
			c.Items = append(c.Items, it)
		}
	}
	c.UpdatedAt = s.Now()
	c.Total = cartTotal(c.Items)
	if err := s.Store.PutCart(ctx, c); err != nil {
		return Cart{}, err
	}
	s.stockChanged(productID)
	return c, nil
}
