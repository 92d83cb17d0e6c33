// Fulfilment after payment: packing, shipping, hand-over in the showroom by
// pickup code, and refunds of whole orders or some of their lines.

package cart

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pickupAlphabet leaves out look-alikes (0/O, 1/I/L) so a code read aloud
// or off a phone is typed right.
const pickupAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

func pickupCode() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = pickupAlphabet[int(b[i])%len(pickupAlphabet)]
	}
	return string(b)
}

func intentMeta(pi string) string          { return "intent:" + pi }
func pickupPointMeta(stream string) string { return "pickup-point:" + stream }

// update applies fn to the order and, when its status changed, tells the
// notifier and sends the receipt the new status calls for.
func (s *Service) update(ctx context.Context, id string, fn func(*Order) error) (Order, error) {
	var was OrderStatus
	o, err := s.Store.UpdateOrder(ctx, id, func(o *Order) error {
		was = o.Status
		return fn(o)
	})
	if err != nil {
		return o, err
	}
	if o.Status != was {
		s.orderChanged(o)
		s.receipt(o, was)
	}
	return o, nil
}

// PackOrder marks a paid order packed.
func (s *Service) PackOrder(ctx context.Context, id string) (Order, error) {
	return s.update(ctx, id, func(o *Order) error { return o.Transition(StatusPacked, s.Now()) })
}

// ShipOrder marks an order shipped with its carrier and tracking number.
func (s *Service) ShipOrder(ctx context.Context, id, carrier, tracking string) (Order, error) {
	carrier, tracking = strings.TrimSpace(carrier), strings.TrimSpace(tracking)
	f := map[string]string{}
	for k, v := range map[string]string{"carrier": carrier, "tracking": tracking} {
		if v == "" || utf8.RuneCountInString(v) > 100 {
			f[k] = "required, at most 100 characters"
		}
	}
	if len(f) > 0 {
		return Order{}, &BuyerError{Fields: f}
	}
	return s.update(ctx, id, func(o *Order) error {
		if o.Delivery != nil && o.Delivery.Method == DeliveryPickup {
			return fmt.Errorf("%w: the buyer picks this order up in the showroom", ErrIllegalTransition)
		}
		if err := o.Transition(StatusShipped, s.Now()); err != nil {
			return err
		}
		o.Shipment = &Shipment{Carrier: carrier, Tracking: tracking}
		return nil
	})
}

// ErrWrongCode says a pickup code does not match the order.
var ErrWrongCode = errors.New("wrong pickup code")

// PickUpOrder hands an order over in the showroom: the code the buyer
// shows must match.
func (s *Service) PickUpOrder(ctx context.Context, id, code string) (Order, error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	return s.update(ctx, id, func(o *Order) error {
		if o.PickupCode == "" || subtle.ConstantTimeCompare([]byte(code), []byte(o.PickupCode)) != 1 {
			return ErrWrongCode
		}
		return o.Transition(StatusPickedUp, s.Now())
	})
}

// OrderByPickupCode finds a stream's order by the code its buyer shows.
func (s *Service) OrderByPickupCode(ctx context.Context, stream, code string) (Order, error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	if len(code) != 6 {
		return Order{}, ErrWrongCode
	}
	os, err := s.Store.ListOrders(ctx, stream, 10000)
	if err != nil {
		return Order{}, err
	}
	for _, o := range os {
		if o.PickupCode == code {
			return o, nil
		}
	}
	return Order{}, ErrWrongCode
}

// shippedOut reports whether the order's goods left the shop.
func shippedOut(o *Order) bool {
	for _, h := range o.History {
		if h.Status == StatusShipped || h.Status == StatusPickedUp {
			return true
		}
	}
	return false
}

// RefundOrder refunds lines of a paid order (none named: every line not yet
// refunded). Units go back to stock unless the goods left the shop (shipped
// or picked up); restock overrides that. The money is refunded first with an
// idempotency key naming the lines, so a retry after a failure refunds once.
func (s *Service) RefundOrder(ctx context.Context, id string, lines []int, restock *bool) (Order, error) {
	o, err := s.Store.GetOrder(ctx, id)
	if err != nil {
		return o, err
	}
	if !o.Status.Sold() {
		return o, fmt.Errorf("%w: a %s order has nothing to refund", ErrIllegalTransition, o.Status)
	}
	if len(lines) == 0 {
		for i, it := range o.Items {
			if !it.Refunded {
				lines = append(lines, i)
			}
		}
	}
	lines = slices.Compact(slices.Sorted(slices.Values(lines)))
	amount := Money{Currency: o.Total.Currency}
	for _, i := range lines {
		if i < 0 || i >= len(o.Items) {
			return o, invalid("line %d: the order has lines 0-%d", i, len(o.Items)-1)
		}
		if o.Items[i].Refunded {
			return o, fmt.Errorf("%w: line %d is already refunded", ErrIllegalTransition, i)
		}
		amount.Amount += o.Items[i].UnitPrice.Amount * int64(o.Items[i].Quantity)
	}
	if len(lines) == 0 {
		return o, fmt.Errorf("%w: every line is already refunded", ErrIllegalTransition)
	}
	back := !shippedOut(&o)
	if restock != nil {
		back = *restock
	}
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strconv.Itoa(l)
	}
	refID, err := s.Payments.Refund(ctx, &o, amount.Amount, "streamd-refund-"+o.ID+"-"+strings.Join(parts, "."))
	if err != nil {
		return o, fmt.Errorf("%w: %w", errPayment, err)
	}
	o, err = s.update(ctx, id, func(o *Order) error {
		for _, i := range lines {
			if o.Items[i].Refunded {
				return fmt.Errorf("%w: line %d is already refunded", ErrIllegalTransition, i)
			}
			o.Items[i].Refunded = true
		}
		o.Refunds = append(o.Refunds, Refund{ID: refID, Lines: lines, Amount: amount, Restocked: back, At: s.Now()})
		to := StatusRefunded
		for _, it := range o.Items {
			if !it.Refunded {
				to = StatusPartiallyRefunded
			}
		}
		if o.Status == to { // a further partial refund: history says so
			o.History = append(o.History, OrderEvent{Status: to, At: s.Now(), Note: "more lines refunded"})
			o.UpdatedAt = s.Now()
			return nil
		}
		return o.Transition(to, s.Now())
	})
	if err != nil {
		return o, err
	}
	if back {
		for _, i := range lines {
			it := o.Items[i]
			if ok, err := s.Store.Release(ctx, it.ProductID, it.HoldID); err != nil {
				return o, err
			} else if ok {
				s.stockChanged(it.ProductID)
			}
		}
	}
	return o, nil
}

// refundedByProvider records a refund made outside streamd (the Stripe
// dashboard), told by charge.refunded: amountRefunded is the charge's total
// refunded so far, so a repeated event changes nothing.
func (s *Service) refundedByProvider(ctx context.Context, id string, amountRefunded int64, refID string) error {
	_, err := s.update(ctx, id, func(o *Order) error {
		var known int64
		for _, r := range o.Refunds {
			known += r.Amount.Amount
		}
		if amountRefunded <= known || !o.Status.Sold() && o.Status != StatusRefunded {
			return nil
		}
		o.Refunds = append(o.Refunds, Refund{ID: refID, Amount: Money{Amount: amountRefunded - known, Currency: o.Total.Currency}, At: s.Now()})
		to := StatusPartiallyRefunded
		if amountRefunded >= o.Total.Amount {
			to = StatusRefunded
			for i := range o.Items {
				o.Items[i].Refunded = true
			}
		}
		if o.Status == to {
			return nil
		}
		return o.Transition(to, s.Now())
	})
	return err
}

// CancelOrder cancels an order (staff). Before payment the holds go back
// and the authorization is voided; after payment it is a refund of every
// line (restocked unless shipped).
func (s *Service) CancelOrder(ctx context.Context, id string) (Order, error) {
	o, err := s.Store.GetOrder(ctx, id)
	if err != nil {
		return o, err
	}
	if o.Status.Sold() {
		return s.RefundOrder(ctx, id, nil, nil)
	}
	if o.Status == StatusRefunded {
		return o, nil // a repeated cancel
	}
	return s.endOrder(ctx, id, StatusCancelled)
}

// SoldByProduct counts the units of a stream's paid orders per product,
// refunded lines left out: the console's "sold" figures.
func (s *Service) SoldByProduct(ctx context.Context, stream string) (map[string]int, error) {
	os, err := s.Store.ListOrders(ctx, stream, 10000)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, o := range os {
		if !o.Status.Sold() {
			continue
		}
		for _, it := range o.Items {
			if !it.Refunded {
				out[it.ProductID] += it.Quantity
			}
		}
	}
	return out, nil
}

// PickupPoint is where a stream's showroom buyers collect their orders.
type PickupPoint struct {
	Address string `json:"address"`
	Note    string `json:"note"` // opening hours and the like
}

// PickupPointOf returns a stream's pickup point (empty when not set).
func (s *Service) PickupPointOf(ctx context.Context, stream string) (PickupPoint, error) {
	var p PickupPoint
	v, err := s.Store.GetMeta(ctx, pickupPointMeta(stream))
	if errors.Is(err, ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal([]byte(v), &p)
}

// SetPickupPoint sets a stream's pickup point.
func (s *Service) SetPickupPoint(ctx context.Context, stream string, p PickupPoint) error {
	p.Address, p.Note = strings.TrimSpace(p.Address), strings.TrimSpace(p.Note)
	if utf8.RuneCountInString(p.Address) > 300 || utf8.RuneCountInString(p.Note) > 300 {
		return &BuyerError{Fields: map[string]string{"address": "at most 300 characters", "note": "at most 300 characters"}}
	}
	b, _ := json.Marshal(p)
	return s.Store.PutMeta(ctx, pickupPointMeta(stream), string(b))
}
