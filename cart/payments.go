package cart

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/paymentintent"
	"github.com/stripe/stripe-go/v76/refund"
)

// Provider takes payments for orders.
type Provider interface {
	// Name is "dev" or "stripe".
	Name() string
	// Authorize starts the payment of a new order (o.ID, o.Total,
	// o.IdempotencyKey are set) and returns its Payment. paid=true means
	// the money is taken at once (dev): the holds are committed right away.
	Authorize(ctx context.Context, o *Order) (p Payment, paid bool, err error)
	// Capture takes an authorized payment.
	Capture(ctx context.Context, o *Order) error
	// Void gives the money back: cancels an authorization, refunds a capture.
	Void(ctx context.Context, o *Order) error
	// Refund gives amount (minor units) of a captured payment back; key
	// makes a retry refund once. It returns the provider's refund id.
	Refund(ctx context.Context, o *Order, amount int64, key string) (string, error)
}

// DevProvider marks every order paid at once. Test mode, clearly labelled.
type DevProvider struct{}

func (DevProvider) Name() string { return "dev" }

func (DevProvider) Authorize(ctx context.Context, o *Order) (Payment, bool, error) {
	return Payment{Provider: "dev", TestMode: true, Status: "succeeded"}, true, nil
}

func (DevProvider) Capture(ctx context.Context, o *Order) error { return nil }
func (DevProvider) Void(ctx context.Context, o *Order) error    { return nil }

// Refund marks the refund done (no money moved in test mode).
func (DevProvider) Refund(ctx context.Context, o *Order, amount int64, key string) (string, error) {
	return "re_dev_" + hashKey(key)[:16], nil
}

// StripeConfig configures the Stripe provider.
type StripeConfig struct {
	SecretKey     string
	WebhookSecret string
	// APIURL overrides https://api.stripe.com (e.g. stripe-mock).
	APIURL string
	// HTTPClient is optional (default: 30 s timeout).
	HTTPClient *http.Client
	// MaxNetworkRetries (default 2).
	MaxNetworkRetries *int64
}

// StripeProvider authorizes with a PaymentIntent (capture_method=manual)
// per order and captures once the holds are committed. It uses its own
// backend, never stripe-go's global one.
type StripeProvider struct {
	cfg StripeConfig
	pi  paymentintent.Client
	rf  refund.Client
}

// NewStripeProvider builds a provider with its own API backend.
func NewStripeProvider(cfg StripeConfig) *StripeProvider {
	bc := &stripe.BackendConfig{
		HTTPClient:        cfg.HTTPClient,
		MaxNetworkRetries: cfg.MaxNetworkRetries,
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if bc.HTTPClient == nil {
		bc.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.APIURL != "" {
		bc.URL = stripe.String(cfg.APIURL)
	}
	b := stripe.GetBackendWithConfig(stripe.APIBackend, bc)
	return &StripeProvider{cfg: cfg, pi: paymentintent.Client{B: b, Key: cfg.SecretKey}, rf: refund.Client{B: b, Key: cfg.SecretKey}}
}

func (p *StripeProvider) Name() string { return "stripe" }

// TestMode reports whether the key is a test key.
func (p *StripeProvider) TestMode() bool {
	return !strings.HasPrefix(p.cfg.SecretKey, "sk_live_") && !strings.HasPrefix(p.cfg.SecretKey, "rk_live_")
}

func stripeIdemKey(k string) string {
	k = "streamd-order-" + k
	if len(k) > 255 {
		k = "streamd-order-h-" + hashKey(k)
	}
	return k
}

func (p *StripeProvider) Authorize(ctx context.Context, o *Order) (Payment, bool, error) {
	params := &stripe.PaymentIntentParams{
		Amount:        stripe.Int64(o.Total.Amount),
		Currency:      stripe.String(o.Total.Currency),
		CaptureMethod: stripe.String(string(stripe.PaymentIntentCaptureMethodManual)),
		AutomaticPaymentMethods: &stripe.PaymentIntentAutomaticPaymentMethodsParams{
			Enabled: stripe.Bool(true),
		},
	}
	params.Context = ctx
	params.AddMetadata("order_id", o.ID)
	if o.Stream != "" {
		params.AddMetadata("stream", o.Stream)
	}
	if o.Card != "" {
		params.AddMetadata("card", o.Card)
	}
	if o.Source != "" {
		params.AddMetadata("source", o.Source)
	}
	if o.Contact != nil && o.Contact.Email != "" {
		params.ReceiptEmail = stripe.String(o.Contact.Email)
	}
	if d := o.Delivery; d != nil && d.Address != nil && o.Contact != nil {
		params.Shipping = &stripe.ShippingDetailsParams{Name: stripe.String(o.Contact.Name), Address: &stripe.AddressParams{
			Line1: stripe.String(d.Address.Line1), Line2: stripe.String(d.Address.Line2), PostalCode: stripe.String(d.Address.PostalCode),
			City: stripe.String(d.Address.City), Country: stripe.String(d.Address.Country)}}
	}
	if o.Delivery != nil {
		params.AddMetadata("delivery", o.Delivery.Method)
	}
	params.SetIdempotencyKey(stripeIdemKey(o.IdempotencyKey))
	pi, err := p.pi.New(params)
	if err != nil {
		return Payment{}, false, fmt.Errorf("stripe: create payment intent: %w", err)
	}
	return Payment{Provider: "stripe", TestMode: p.TestMode(), Status: string(pi.Status), IntentID: pi.ID, ClientSecret: pi.ClientSecret}, false, nil
}

func (p *StripeProvider) Capture(ctx context.Context, o *Order) error {
	params := &stripe.PaymentIntentCaptureParams{}
	params.Context = ctx
	params.SetIdempotencyKey("streamd-capture-" + o.ID)
	if _, err := p.pi.Capture(o.Payment.IntentID, params); err != nil {
		return fmt.Errorf("stripe: capture %s: %w", o.Payment.IntentID, err)
	}
	return nil
}

// Refund refunds amount of the order's PaymentIntent (Stripe Refund).
func (p *StripeProvider) Refund(ctx context.Context, o *Order, amount int64, key string) (string, error) {
	if o.Payment.IntentID == "" {
		return "", fmt.Errorf("stripe: order %s has no payment intent", o.ID)
	}
	params := &stripe.RefundParams{PaymentIntent: stripe.String(o.Payment.IntentID), Amount: stripe.Int64(amount)}
	params.Context = ctx
	params.AddMetadata("order_id", o.ID)
	if len(key) > 255 {
		key = "streamd-refund-h-" + hashKey(key)
	}
	params.SetIdempotencyKey(key)
	r, err := p.rf.New(params)
	if err != nil {
		return "", fmt.Errorf("stripe: refund %s: %w", o.Payment.IntentID, err)
	}
	return r.ID, nil
}

func (p *StripeProvider) Void(ctx context.Context, o *Order) error {
	if o.Payment.IntentID == "" {
		return nil
	}
	if o.Status == StatusPaid {
		params := &stripe.RefundParams{PaymentIntent: stripe.String(o.Payment.IntentID)}
		params.Context = ctx
		params.SetIdempotencyKey("streamd-refund-" + o.ID)
		if _, err := p.rf.New(params); err != nil {
			return fmt.Errorf("stripe: refund %s: %w", o.Payment.IntentID, err)
		}
		return nil
	}
	params := &stripe.PaymentIntentCancelParams{}
	params.Context = ctx
	params.SetIdempotencyKey("streamd-cancel-" + o.ID)
	if _, err := p.pi.Cancel(o.Payment.IntentID, params); err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodePaymentIntentUnexpectedState {
			return nil // already cancelled or never authorized
		}
		return fmt.Errorf("stripe: cancel %s: %w", o.Payment.IntentID, err)
	}
	return nil
}
