// Stripe events beyond the payment itself: the buyer's details collected
// by Stripe's elements, and refunds (ours, or made in the dashboard).

package cart

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/stripe/stripe-go/v76"
)

// fillFromIntent copies what Stripe's Address Element and Link/Payment
// Element collected (shipping, receipt_email) onto an order that lacks it.
func (s *Service) fillFromIntent(ctx context.Context, o Order, pi *stripe.PaymentIntent) (Order, error) {
	needEmail := pi.ReceiptEmail != "" && (o.Contact == nil || o.Contact.Email == "")
	needShip := pi.Shipping != nil && pi.Shipping.Address != nil && (o.Delivery == nil || o.Delivery.Address == nil) &&
		(o.Delivery == nil || o.Delivery.Method != DeliveryPickup)
	if !needEmail && !needShip {
		return o, nil
	}
	return s.Store.UpdateOrder(ctx, o.ID, func(o *Order) error {
		if o.Contact == nil {
			o.Contact = &Contact{}
		}
		if needEmail && o.Contact.Email == "" {
			o.Contact.Email = pi.ReceiptEmail
		}
		if needShip {
			a := pi.Shipping.Address
			o.Delivery = &Delivery{Method: DeliveryShip, Address: &Address{Line1: a.Line1, Line2: a.Line2, PostalCode: a.PostalCode, City: a.City, Country: a.Country}}
			if o.Contact.Name == "" {
				o.Contact.Name = pi.Shipping.Name
			}
		}
		return nil
	})
}

// chargeRefunded records refunds told by charge.refunded. The charge names
// its PaymentIntent; the order is found through the intent index written at
// checkout. The event carries the total refunded so far, so applying it
// twice changes nothing.
func (s *Service) chargeRefunded(ctx context.Context, ev stripe.Event) error {
	var ch stripe.Charge
	if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
		return invalid("charge in event: %v", err)
	}
	if ch.PaymentIntent == nil || ch.PaymentIntent.ID == "" {
		return nil
	}
	id, err := s.Store.GetMeta(ctx, intentMeta(ch.PaymentIntent.ID))
	if errors.Is(err, ErrNotFound) {
		s.log.Warn("cart: charge.refunded for an unknown intent", "event", ev.ID, "intent", ch.PaymentIntent.ID)
		return nil
	}
	if err != nil {
		return err
	}
	refID := ""
	if ch.Refunds != nil && len(ch.Refunds.Data) > 0 {
		refID = ch.Refunds.Data[0].ID
	}
	return s.refundedByProvider(ctx, id, ch.AmountRefunded, refID)
}
