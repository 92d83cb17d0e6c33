// Checkout: turning a cart or buy-now items into holds and a pending order.

package cart

import (
	"context"
	"errors"
	"fmt"
	"time"
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
		o.Items = append(o.Items, h.item())
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
