// Checkout: turning a cart or buy-now items into holds and a pending order.

package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/streamd/streamd/internal/httpx"
)

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
	// Contact and Delivery are required with the dev provider; with Stripe
	// its elements collect email and address (see ValidateBuyer).
	Contact  *Contact
	Delivery *Delivery
}

// ErrKeyReused says an Idempotency-Key was sent again with another request
// (other items, quantities, cart, stream or buyer): 422, like Stripe.
var ErrKeyReused = errors.New("idempotency key reused with a different request")

// fingerprint is the hash that binds an Idempotency-Key to its request: the
// buyer and the canonical body (lines merged and sorted, so the same
// purchase sent again matches). New checkout fields must be added here.
func (req CheckoutRequest) fingerprint(lines []checkoutLine) string {
	type canonLine struct {
		P string `json:"p"`
		K string `json:"k"`
		Q int    `json:"q"`
	}
	c := struct {
		Buyer    string      `json:"buyer"`
		Cart     string      `json:"cart"`
		Lines    []canonLine `json:"lines"`
		Stream   string      `json:"stream"`
		Card     string      `json:"card"`
		Source   string      `json:"source"`
		Contact  *Contact    `json:"contact"`
		Delivery *Delivery   `json:"delivery"`
	}{Buyer: req.Buyer, Cart: req.CartID, Stream: req.Stream, Card: req.Card, Source: req.Source, Contact: req.Contact, Delivery: req.Delivery}
	for _, l := range lines {
		c.Lines = append(c.Lines, canonLine{l.pid, l.sku, l.qty})
	}
	sort.Slice(c.Lines, func(i, j int) bool {
		a, b := c.Lines[i], c.Lines[j]
		return a.P < b.P || (a.P == b.P && a.K < b.K)
	})
	b, _ := json.Marshal(c)
	return hashKey(string(b))
}

type checkoutLine struct {
	pid, sku, hold string
	qty            int
	live           *Hold // a cart line whose hold still runs: kept as placed
}

// buyNowLines merges and checks the items of a buy-now checkout.
func buyNowLines(items []CheckoutItem) ([]checkoutLine, error) {
	var lines []checkoutLine
	idx := map[string]int{}
	for _, it := range items {
		if !ValidID(it.ProductID) || (it.SKU != "" && !ValidID(it.SKU)) {
			return nil, invalid("product_id and sku must be valid ids")
		}
		if it.Quantity <= 0 || it.Quantity > 1000 {
			return nil, invalid("quantity must be between 1 and 1000")
		}
		k := it.ProductID + "\x00" + it.SKU
		if i, ok := idx[k]; ok {
			lines[i].qty += it.Quantity
			continue
		}
		idx[k] = len(lines)
		lines = append(lines, checkoutLine{pid: it.ProductID, sku: it.SKU, qty: it.Quantity})
	}
	return lines, nil
}

// Checkout places holds and creates an order (idempotent per key). It
// returns the order and whether it was created now (false: a replay).
//
// What a 201 promises: the order is stored (with its index and key) in the
// state returned; with a provider that takes the money at once (dev) that
// state is paid. When the store fails on the way the error wraps
// httpx.ErrStoreUnavailable (503); holds already placed are left to expire
// rather than released blind, and a retry with the same key resumes the
// same order or makes exactly one.
func (s *Service) Checkout(ctx context.Context, req CheckoutRequest) (o Order, created bool, err error) {
	start := time.Now()
	defer func() {
		s.m.latency.Observe(time.Since(start).Seconds())
		s.m.checkouts.WithLabelValues(outcome(created, err)).Inc()
	}()
	if req.IdempotencyKey == "" || len(req.IdempotencyKey) > 255 {
		return Order{}, false, fieldErr("Idempotency-Key", 255, "an Idempotency-Key header (1-255 characters) is required")
	}
	if req.Source != "" && req.Source != "player" && req.Source != "showroom" && req.Source != "replay" {
		return Order{}, false, invalid("source must be \"player\", \"showroom\" or \"replay\"")
	}
	if err := capText("stream", req.Stream, maxRefLen); err != nil {
		return Order{}, false, err
	}
	if err := capText("card", req.Card, maxRefLen); err != nil {
		return Order{}, false, err
	}
	var lines []checkoutLine
	fromCart := req.CartID != ""
	if fromCart {
		if len(req.Items) > 0 {
			return Order{}, false, invalid("send either cart_id or items, not both")
		}
		if err := capText("cart_id", req.CartID, maxRefLen); err != nil {
			return Order{}, false, err
		}
	} else if lines, err = buyNowLines(req.Items); err != nil {
		return Order{}, false, err
	}
	fp := req.fingerprint(lines)
	if prev, err := s.Store.OrderByKey(ctx, req.IdempotencyKey); err == nil {
		return s.replay(ctx, prev, fp)
	} else if !errors.Is(err, ErrNotFound) {
		return Order{}, false, err
	}
	if fromCart {
		c, err := s.Store.GetCart(ctx, req.CartID)
		if err != nil {
			return Order{}, false, fmt.Errorf("cart: %w", err)
		}
		now := s.Now()
		for _, it := range c.Items {
			l := checkoutLine{pid: it.ProductID, sku: it.SKU, hold: it.HoldID, qty: it.Quantity}
			if it.HoldID != "" && it.ExpiresAt.After(now) {
				// The price (a flash deal's) was locked in when the buyer
				// tapped Buy; paying while the hold runs keeps it, even if the
				// deal ended meanwhile. Commit still checks the hold exists.
				l.live = &Hold{ID: it.HoldID, ProductID: it.ProductID, SKU: it.SKU, Quantity: it.Quantity, Buyer: c.Buyer,
					ExpiresAt: it.ExpiresAt, UnitPrice: it.UnitPrice}
				if it.Deal {
					l.live.DealID = cartDealMarker
				}
			}
			lines = append(lines, l)
		}
		if c.Buyer != "" {
			req.Buyer = c.Buyer // the holds count for the cart's buyer
		}
	} else {
		// Hold ids come from the key and the request: a retry of the same
		// request finds (and keeps) its holds; another request with the
		// same key never touches them.
		kh := hashKey(req.IdempotencyKey + "\x00" + fp)
		for i := range lines {
			lines[i].hold = fmt.Sprintf("k%s-%d", kh, i)
		}
	}
	if len(lines) == 0 || len(lines) > 50 {
		return Order{}, false, invalid("an order needs 1 to 50 items")
	}
	if err := ValidateBuyer(req.Contact, req.Delivery, s.Payments.Name() != "stripe"); err != nil {
		return Order{}, false, err
	}
	now := s.Now()
	holds := make([]Hold, 0, len(lines))
	// fail answers with the order a concurrent request with the same key
	// made, else releases what was reserved (not when the store is
	// unreachable: the holds expire by themselves and a retry reuses them).
	fail := func(err error) (Order, bool, error) {
		if prev, e := s.Store.OrderByKey(ctx, req.IdempotencyKey); e == nil {
			if prev.RequestHash != "" && prev.RequestHash != fp {
				s.release(ctx, holds, fromCart)
				return Order{}, false, ErrKeyReused
			}
			return s.replay(ctx, prev, fp)
		}
		if !errors.Is(err, httpx.ErrStoreUnavailable) {
			s.release(ctx, holds, fromCart)
		}
		return Order{}, false, err
	}
	for _, l := range lines {
		if l.live != nil {
			holds = append(holds, *l.live)
			continue
		}
		h, err := s.Store.Reserve(ctx, ReserveRequest{HoldID: l.hold, ProductID: l.pid, SKU: l.sku,
			Quantity: l.qty, Buyer: req.Buyer, TTL: s.HoldTTL, Now: now, Keep: !fromCart})
		if err != nil {
			return fail(err)
		}
		holds = append(holds, h)
	}
	o = Order{ID: randomID(), Status: StatusPending, Buyer: req.Buyer, Stream: req.Stream, Card: req.Card,
		Source: req.Source, IdempotencyKey: req.IdempotencyKey, RequestHash: fp, CreatedAt: now, UpdatedAt: now,
		Contact: req.Contact, Delivery: req.Delivery, Secret: randomID(),
		History: []OrderEvent{{Status: StatusPending, At: now}}}
	if req.Delivery.Method == DeliveryPickup {
		o.PickupCode = pickupCode()
	}
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
		o.Items = append(o.Items, h.item())
	}
	// The email's per-buyer limits are checked and counted by CreateOrder.
	if o.emailClaims, err = s.emailClaims(ctx, req.Contact, holds, now); err != nil {
		return fail(err)
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
		if o.RequestHash != "" && o.RequestHash != fp {
			s.release(ctx, holds, fromCart)
			return Order{}, false, ErrKeyReused
		}
		return s.replay(ctx, o, fp)
	}
	if o.Payment.IntentID != "" {
		// charge.refunded names the intent, not the order.
		if err := s.Store.PutMeta(ctx, intentMeta(o.Payment.IntentID), o.ID); err != nil {
			s.log.Warn("cart: index payment intent", "order", o.ID, "err", err)
		}
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
		if o, err = s.commitOrder(ctx, o, false); err != nil {
			// The order stays pending: a retry with the key commits it,
			// else the sweeper expires it when its holds run out.
			return Order{}, false, err
		}
	}
	s.log.Info("cart: order", "order", o.ID, "status", o.Status, "total", o.Total.Amount, "currency", o.Total.Currency,
		"provider", o.Payment.Provider, "test_mode", o.Payment.TestMode, "stream", o.Stream)
	return o, true, nil
}

// replay answers a request whose key already names an order: 422 when the
// key was made for another request, else the order as it is now. An order
// paid at once whose commit did not finish (the store failed, or the first
// request is still on it) is committed here, so a replay never reports
// "pending" for a payment that succeeded.
func (s *Service) replay(ctx context.Context, prev Order, fp string) (Order, bool, error) {
	if prev.RequestHash != "" && prev.RequestHash != fp {
		return Order{}, false, ErrKeyReused
	}
	if prev.Status == StatusPending && prev.Payment.Status == "succeeded" {
		o, err := s.commitOrder(ctx, prev, false)
		if err != nil {
			return Order{}, false, err
		}
		return o, false, nil
	}
	return prev, false, nil
}

// release gives back the holds a failed buy-now checkout placed.
func (s *Service) release(ctx context.Context, holds []Hold, fromCart bool) {
	if fromCart {
		return // the cart keeps its holds
	}
	for _, h := range holds {
		if _, err := s.Store.Release(context.WithoutCancel(ctx), h.ProductID, h.ID); err != nil {
			s.log.Error("cart: release after failed checkout", "hold", h.ID, "err", err)
		}
	}
}

var errPayment = errors.New("payment provider failed")

func outcome(created bool, err error) string {
	var so *SoldOutError
	var le *LimitError
	var fe *FieldError
	switch {
	case err == nil && created:
		return "created"
	case err == nil:
		return "replayed"
	case errors.As(err, &so):
		return "sold_out"
	case errors.As(err, &le):
		return "limit"
	case errors.Is(err, httpx.ErrStoreUnavailable):
		return "unavailable"
	case errors.Is(err, ErrKeyReused), errors.As(err, &fe), errors.As(err, new(*BuyerError)),
		errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound), errors.Is(err, ErrInactive),
		errors.Is(err, ErrSKURequired), errors.Is(err, ErrUnknownSKU):
		return "invalid"
	}
	return "error"
}
