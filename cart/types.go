// Package cart is streamd's commerce core: the catalog, inventory with timed
// holds, carts, orders, payments (a dev provider and Stripe) and the Store
// they live in (embedded bbolt or Redis). It imports nothing of streamd's
// but internal/httpx and emits stock events through the Notifier it declares.
package cart

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Money is an amount in minor units (cents) of an ISO 4217 currency (lower case).
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// SKU is one variant of a product (e.g. size M, colour red).
type SKU struct {
	ID      string            `json:"id"`
	Title   string            `json:"title,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	// Price is the variant's own price (nil: the product's), in the
	// product's currency; holds lock it in like the product's (unitPrice).
	Price *Money `json:"price,omitempty"`
	// Stock is the number of units the shop has for sale in total; Available
	// is Stock − held − sold, never below zero (filled by the Store).
	Stock     int `json:"stock"`
	Available int `json:"available"`
	Sold      int `json:"sold"`
	Held      int `json:"held"`
}

// Deal is a flash deal on a product: a price until EndsAt, an optional cap
// on units sold at that price, a per-buyer limit and its own hold time.
type Deal struct {
	Price    Money         `json:"price"`
	EndsAt   time.Time     `json:"ends_at"`
	Quantity int           `json:"quantity"`  // cap on units at the deal price; 0 = none
	PerBuyer int           `json:"per_buyer"` // 0 = none
	HoldTTL  time.Duration `json:"-"`
	// Filled by the Store: the deal's id (new for each SetDeal) and the units
	// held or sold at the deal so far.
	ID   string `json:"id,omitempty"`
	Used int    `json:"used"`
	// Remaining is Quantity − Used when Quantity > 0 (JSON only).
	Remaining *int `json:"remaining,omitempty"`
}

// Active reports whether the deal applies at t.
func (d *Deal) Active(t time.Time) bool { return d != nil && d.ID != "" && t.Before(d.EndsAt) }

// Product is a catalog entry. Stock and Available sum the SKUs.
type Product struct {
	ID            string   `json:"id"`
	Title         string   `json:"title"`
	Description   string   `json:"description,omitempty"`
	Images        []string `json:"images"`
	Price         Money    `json:"price"`
	Stock         int      `json:"stock"`
	Available     int      `json:"available"`
	Active        bool     `json:"active"`
	SKUs          []SKU    `json:"skus"`
	Deal          *Deal    `json:"deal"`
	PerBuyerLimit int      `json:"per_buyer_limit"`
}

// DefaultSKU is the id of the implicit SKU of a product created without SKUs.
const DefaultSKU = "default"

// sku returns the SKU with the id, resolving "" to the only SKU.
func (p *Product) sku(id string) (*SKU, error) {
	if id == "" {
		if len(p.SKUs) == 1 {
			return &p.SKUs[0], nil
		}
		return nil, ErrSKURequired
	}
	for i := range p.SKUs {
		if p.SKUs[i].ID == id {
			return &p.SKUs[i], nil
		}
	}
	return nil, ErrUnknownSKU
}

// unitPrice is what a unit of the SKU costs without a deal: its own price
// when it has one, else the product's.
func (p *Product) unitPrice(k *SKU) Money {
	if k.Price != nil {
		return *k.Price
	}
	return p.Price
}

func (p *Product) fillTotals(now time.Time) {
	p.Stock, p.Available = 0, 0
	for i := range p.SKUs {
		s := &p.SKUs[i]
		s.Available = max(0, s.Stock-s.Held-s.Sold)
		p.Stock += s.Stock
		p.Available += s.Available
	}
	if p.Deal != nil && !p.Deal.Active(now) {
		p.Deal = nil
	}
	if p.Deal != nil && p.Deal.Quantity > 0 {
		r := max(0, p.Deal.Quantity-p.Deal.Used)
		p.Deal.Remaining = &r
	}
}

// ProductUpdate is a partial update (PATCH). Nil fields stay as they are.
// Stock sets the stock of SKUs by id; "" means the only SKU (on the wire
// it is "stock" and "skus", see patchBody).
type ProductUpdate struct {
	Title         *string        `json:"title,omitempty"`
	Description   *string        `json:"description,omitempty"`
	Images        []string       `json:"images,omitempty"`
	Price         *Money         `json:"price,omitempty"`
	Active        *bool          `json:"active,omitempty"`
	PerBuyerLimit *int           `json:"per_buyer_limit,omitempty"`
	Stock         map[string]int `json:"-"`
	// Prices sets the price of SKUs by id (a nil value: the product's
	// price again); on the wire it is "price" in "skus", see patchBody.
	Prices map[string]*Money `json:"-"`
	// SKUs renames variants that exist and adds the ones that do not (their
	// stock comes from Stock, their price from SKUInput.Price; a variant
	// that exists keeps its price unless Prices names it). A variant is never removed — orders and holds
	// name it — so a shop retires one by setting its stock to 0.
	SKUs []SKUInput `json:"-"`
	// DropDefault lets the first added variants replace the implicit SKU
	// (the Service sets it only when nothing was ever held or sold of it).
	DropDefault bool `json:"-"`
}

// ReserveRequest asks the Store to place (or re-set) a hold. Reserving an
// existing hold id sets its quantity and refreshes its expiry; a committed
// hold is returned as it is (retries are idempotent).
type ReserveRequest struct {
	HoldID    string
	ProductID string
	SKU       string // "" = the only SKU
	Quantity  int    // > 0
	Buyer     string // "" = no per-buyer accounting
	TTL       time.Duration
	Now       time.Time
	// Keep returns a live hold with this id as it is instead of re-setting
	// it: checkout retries share the first request's hold, never change it.
	Keep bool
}

// Hold is stock set aside for a cart or an order until ExpiresAt.
type Hold struct {
	ID        string    `json:"id"`
	ProductID string    `json:"product_id"`
	SKU       string    `json:"sku"`
	Quantity  int       `json:"quantity"`
	Buyer     string    `json:"buyer,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	Committed bool      `json:"committed"`
	DealID    string    `json:"deal_id,omitempty"`
	UnitPrice Money     `json:"unit_price"`
}

// item is the order (or cart) line that the hold stands for.
func (h Hold) item() OrderItem {
	return OrderItem{ProductID: h.ProductID, SKU: h.SKU, Quantity: h.Quantity, UnitPrice: h.UnitPrice,
		Deal: h.DealID != "", HoldID: h.ID}
}

// OrderStatus is the state of an order. Transitions only go forward.
type OrderStatus string

const (
	StatusPending    OrderStatus = "pending"
	StatusAuthorized OrderStatus = "authorized"
	StatusPaid       OrderStatus = "paid"
	StatusCancelled  OrderStatus = "cancelled"
	StatusExpired    OrderStatus = "expired"
	// Fulfilment: a paid order is packed, then shipped or picked up in the
	// showroom; refunds (of every line, or some) may come at any point after
	// payment. Nothing goes back to pending or paid.
	StatusPacked            OrderStatus = "packed"
	StatusShipped           OrderStatus = "shipped"
	StatusPickedUp          OrderStatus = "picked_up"
	StatusRefunded          OrderStatus = "refunded"
	StatusPartiallyRefunded OrderStatus = "partially_refunded"
)

var transitions = map[OrderStatus][]OrderStatus{
	StatusPending:           {StatusAuthorized, StatusPaid, StatusCancelled, StatusExpired},
	StatusAuthorized:        {StatusPaid, StatusCancelled, StatusExpired},
	StatusPaid:              {StatusPacked, StatusShipped, StatusPickedUp, StatusRefunded, StatusPartiallyRefunded},
	StatusPacked:            {StatusShipped, StatusPickedUp, StatusRefunded, StatusPartiallyRefunded},
	StatusPartiallyRefunded: {StatusPacked, StatusShipped, StatusPickedUp, StatusRefunded, StatusPartiallyRefunded},
	StatusShipped:           {StatusRefunded, StatusPartiallyRefunded},
	StatusPickedUp:          {StatusRefunded, StatusPartiallyRefunded},
}

// Sold reports whether the order's units count as sold (paid, in
// fulfilment, or partly refunded).
func (s OrderStatus) Sold() bool {
	switch s {
	case StatusPaid, StatusPacked, StatusShipped, StatusPickedUp, StatusPartiallyRefunded:
		return true
	}
	return false
}

// CanTransition reports whether an order may go from one state to another.
func CanTransition(from, to OrderStatus) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// OrderItem is one line of an order, with the price charged.
type OrderItem struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
	Deal      bool   `json:"deal"`
	HoldID    string `json:"hold_id,omitempty"`
	// Refunded is set when the line was refunded (lines are refunded whole).
	Refunded bool `json:"refunded,omitempty"`
}

// Payment is the payment side of an order.
type Payment struct {
	Provider     string `json:"provider"`
	TestMode     bool   `json:"test_mode"`
	Status       string `json:"status"`
	IntentID     string `json:"intent_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// Order is a purchase. ID is 128-bit random hex, unguessable.
type Order struct {
	ID     string      `json:"order_id"`
	Status OrderStatus `json:"status"`
	Items  []OrderItem `json:"items"`
	Total  Money       `json:"total"`
	// Buyer is the buyer id (the signed buyer cookie's); Contact and
	// Delivery are what the buyer gave at checkout.
	Buyer    string    `json:"buyer_id,omitempty"`
	Contact  *Contact  `json:"buyer,omitempty"`
	Delivery *Delivery `json:"delivery,omitempty"`
	// Secret lets the buyer read the order without the cookie (the order
	// page's link and the receipt carry it); PickupCode is shown at the
	// showroom desk.
	Secret         string       `json:"secret,omitempty"`
	PickupCode     string       `json:"pickup_code,omitempty"`
	Shipment       *Shipment    `json:"shipment,omitempty"`
	Refunds        []Refund     `json:"refunds,omitempty"`
	History        []OrderEvent `json:"history,omitempty"`
	Stream         string       `json:"stream,omitempty"`
	Card           string       `json:"card,omitempty"`
	Source         string       `json:"source,omitempty"`
	Payment        Payment      `json:"payment"`
	HoldExpiresAt  time.Time    `json:"hold_expires_at"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
	// RequestHash binds IdempotencyKey to the request that made the order
	// (see CheckoutRequest.fingerprint); kept by the stores, never sent.
	RequestHash string `json:"-"`
	// emailClaims are the units the order takes of per-buyer limits on its
	// buyer's email (see email_limits.go); kept by the stores, never sent.
	emailClaims []emailClaim
}

// storedOrder is an Order as both stores keep it: with its RequestHash
// and its email claims.
type storedOrder struct {
	Order
	RequestHash string       `json:"request_hash,omitempty"`
	EmailClaims []emailClaim `json:"email_claims,omitempty"`
}

func encodeOrder(o Order) ([]byte, error) {
	return json.Marshal(storedOrder{Order: o, RequestHash: o.RequestHash, EmailClaims: o.emailClaims})
}

func decodeOrder(raw []byte) (Order, error) {
	var so storedOrder
	if err := json.Unmarshal(raw, &so); err != nil {
		return Order{}, fmt.Errorf("decode order: %w", err)
	}
	so.Order.RequestHash = so.RequestHash
	so.Order.emailClaims = so.EmailClaims
	return so.Order, nil
}

// Transition moves the order to a new state or refuses with ErrIllegalTransition.
func (o *Order) Transition(to OrderStatus, now time.Time) error {
	if o.Status == to {
		return nil
	}
	if !CanTransition(o.Status, to) {
		return fmt.Errorf("%w: %s → %s", ErrIllegalTransition, o.Status, to)
	}
	o.Status = to
	o.UpdatedAt = now
	o.History = append(o.History, OrderEvent{Status: to, At: now})
	return nil
}

// Shipment is how a shipped order travels.
type Shipment struct {
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// Refund is money given back for some lines of an order.
type Refund struct {
	ID        string    `json:"id"` // the provider's refund id
	Lines     []int     `json:"lines"`
	Amount    Money     `json:"amount"`
	Restocked bool      `json:"restocked"`
	At        time.Time `json:"at"`
}

// OrderEvent is one entry of an order's history.
type OrderEvent struct {
	Status OrderStatus `json:"status"`
	At     time.Time   `json:"at"`
	Note   string      `json:"note,omitempty"`
}

// Cart is a buyer's cart; each line holds stock until it expires.
type Cart struct {
	ID        string     `json:"cart_id"`
	Buyer     string     `json:"buyer_id,omitempty"` // not shown to the buyer (writeCart)
	Secret    string     `json:"secret,omitempty"`
	Items     []CartItem `json:"items"`
	Total     Money      `json:"total"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// CartItem is one line of a cart: an order line whose hold lasts until ExpiresAt.
type CartItem struct {
	OrderItem
	ExpiresAt time.Time `json:"hold_expires_at"`
}

// Errors of the Store and the Service.
var (
	ErrNotFound          = errors.New("not found")
	ErrExists            = errors.New("already exists")
	ErrInactive          = errors.New("product is not active")
	ErrSKURequired       = errors.New("product has several SKUs: name one")
	ErrUnknownSKU        = errors.New("unknown SKU")
	ErrHoldGone          = errors.New("hold expired or released")
	ErrIllegalTransition = errors.New("illegal order transition")
	ErrInvalid           = errors.New("invalid")
	// ErrHoldClaimed: an order names a hold another order already has (two
	// checkouts of one cart with different keys).
	ErrHoldClaimed = errors.New("hold already in another order")
	// ErrDealPrice: a flash deal must cost less than the regular price.
	ErrDealPrice = errors.New("deal price not below the regular price")
)

// SoldOutError says a reservation could not be met; Available is what is left.
type SoldOutError struct {
	ProductID string
	SKU       string
	Available int
	Deal      bool
}

func (e *SoldOutError) Error() string {
	if e.Deal {
		return fmt.Sprintf("deal on %s sold out: %d left", e.ProductID, e.Available)
	}
	return fmt.Sprintf("%s/%s sold out: %d available", e.ProductID, e.SKU, e.Available)
}

// LimitError says a buyer passed a per-buyer limit.
type LimitError struct {
	ProductID string
	Limit     int
	Have      int
	Deal      bool
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("per-buyer limit of %d on %s reached (has %d)", e.Limit, e.ProductID, e.Have)
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidID reports whether s is usable as a product, SKU or buyer id.
func ValidID(s string) bool { return idRE.MatchString(s) }

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

func hashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}
