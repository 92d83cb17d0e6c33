// The order lifecycle after checkout: paying, cancelling and expiring.

package cart

import (
	"context"
	"errors"
)

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
	if capture {
		if o.Status == StatusPending {
			var err error
			if o, err = s.transition(ctx, o.ID, StatusAuthorized); err != nil {
				return o, err
			}
		}
		if err := s.Payments.Capture(ctx, &o); err != nil {
			return o, err
		}
	}
	return s.transition(ctx, o.ID, StatusPaid)
}

func (s *Service) transition(ctx context.Context, id string, to OrderStatus) (Order, error) {
	changed := false
	var was OrderStatus
	o, err := s.Store.UpdateOrder(ctx, id, func(o *Order) error {
		changed, was = o.Status != to, o.Status
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
		s.receipt(o, was)
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
