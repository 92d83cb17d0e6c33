package cart

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/streamd/streamd/internal/httpx"
)

// BuyerCookie identifies a buyer (per-buyer limits, reading one's own
// orders and carts): a random id the server signs; clients cannot choose it.
const BuyerCookie = "streamd_buyer"

// Register adds the cart routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/products", s.staff(s.handleCreateProduct))
	mux.HandleFunc("GET /api/products", s.handleListProducts)
	mux.HandleFunc("POST /api/products/import", s.staff(s.handleImport))
	mux.HandleFunc("GET /api/products.csv", s.staff(s.handleExport))
	mux.HandleFunc("GET /api/products/{id}", s.handleGetProduct)
	mux.HandleFunc("PATCH /api/products/{id}", s.staff(s.handlePatchProduct))
	mux.HandleFunc("PUT /api/products/{id}/deal", s.staff(s.handlePutDeal))
	mux.HandleFunc("DELETE /api/products/{id}/deal", s.staff(s.handleDeleteDeal))
	mux.HandleFunc("POST /api/carts", s.handleNewCart)
	mux.HandleFunc("GET /api/carts/{id}", s.handleGetCart)
	mux.HandleFunc("PUT /api/carts/{id}/items", s.handlePutCartItem)
	mux.HandleFunc("DELETE /api/carts/{id}/items/{product}", s.handleDeleteCartItem)
	mux.HandleFunc("POST /api/checkout", s.handleCheckout)
	mux.HandleFunc("GET /api/orders", s.staff(s.handleListOrders))
	mux.HandleFunc("GET /api/orders/{id}", s.handleGetOrder)
	mux.HandleFunc("POST /api/orders/{id}/cancel", s.staff(s.handleCancelOrder))
	mux.HandleFunc("POST /api/stripe/webhook", s.handleStripeWebhook)
	s.registerOrders(mux)
}

func (s *Service) staff(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if httpx.RequireStaff(w, r, s.StaffToken) {
			h(w, r)
		}
	}
}

func (s *Service) isStaff(r *http.Request) bool {
	return httpx.TokenEqual(httpx.BearerToken(r), s.StaffToken)
}

// writeErr maps errors to the contract's JSON errors.
func (s *Service) writeErr(w http.ResponseWriter, err error) {
	var so *SoldOutError
	var le *LimitError
	var be *BuyerError
	var fe *FieldError
	var ce *CurrencyError
	switch {
	case httpx.WriteStoreUnavailable(w, err):
		s.log.Warn("cart: store unavailable", "err", err)
	case errors.As(err, &be):
		httpx.WriteErrorExtra(w, http.StatusUnprocessableEntity, "invalid_buyer", "check the fields named in \"fields\"",
			map[string]any{"fields": be.Fields})
	case errors.Is(err, ErrWrongCode):
		httpx.WriteError(w, http.StatusUnprocessableEntity, "wrong_code", "the pickup code does not match this order: ask the buyer to show it again")
	case errors.Is(err, errCartAccess):
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such cart for this buyer: start a new cart")
	case errors.Is(err, ErrKeyReused):
		httpx.WriteError(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used for a different request: send a new key for a new purchase")
	case errors.As(err, &fe):
		extra := map[string]any{"field": fe.Field}
		if fe.Limit > 0 {
			extra["limit"] = fe.Limit
		}
		httpx.WriteErrorExtra(w, http.StatusUnprocessableEntity, fe.Code(), fe.Error(), extra)
	case errors.As(err, &ce):
		field := cmp.Or(ce.Field, "deal.price.currency")
		httpx.WriteErrorExtra(w, http.StatusUnprocessableEntity, "currency_mismatch",
			ce.Error()+": use the product's currency", map[string]any{"field": field, "currency": ce.Want})
	case errors.Is(err, ErrHoldClaimed):
		httpx.WriteError(w, http.StatusConflict, "already_ordered",
			"this cart was just checked out by another request: look at your orders before buying again")
	case errors.As(err, &so):
		httpx.WriteErrorExtra(w, http.StatusConflict, "sold_out", "not enough stock left: lower the quantity or pick another product",
			map[string]any{"product_id": so.ProductID, "sku": so.SKU, "available": so.Available, "deal": so.Deal})
	case errors.As(err, &le):
		httpx.WriteErrorExtra(w, http.StatusTooManyRequests, "limit_reached", "this buyer reached the per-buyer limit for the product",
			map[string]any{"product_id": le.ProductID, "limit": le.Limit, "have": le.Have, "deal": le.Deal})
	case errors.Is(err, ErrDealPrice):
		httpx.WriteError(w, http.StatusUnprocessableEntity, "deal_price_not_lower", strings.TrimPrefix(err.Error(), ErrDealPrice.Error()+": "))
	case errors.Is(err, ErrInvalid):
		httpx.WriteError(w, http.StatusBadRequest, "invalid", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.Is(err, ErrSKURequired):
		httpx.WriteError(w, http.StatusBadRequest, "sku_required", "the product has several SKUs: send \"sku\"")
	case errors.Is(err, ErrUnknownSKU):
		httpx.WriteError(w, http.StatusBadRequest, "unknown_sku", "no such SKU for the product")
	case errors.Is(err, ErrNotFound):
		httpx.WriteError(w, http.StatusNotFound, "not_found", err.Error()+": check the id")
	case errors.Is(err, ErrExists):
		httpx.WriteError(w, http.StatusConflict, "exists", "a product with this id exists: PATCH it instead")
	case errors.Is(err, ErrInactive):
		httpx.WriteError(w, http.StatusConflict, "inactive", "the product is not on sale")
	case errors.Is(err, ErrIllegalTransition):
		httpx.WriteError(w, http.StatusConflict, "illegal_transition", err.Error())
	case errors.Is(err, errPayment):
		s.log.Error("cart: payment", "err", err)
		httpx.WriteError(w, http.StatusBadGateway, "payment_failed", "the payment provider failed: try again with the same Idempotency-Key")
	default:
		s.log.Error("cart: internal error", "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "internal error: try again")
	}
}

func (s *Service) handleCreateProduct(w http.ResponseWriter, r *http.Request) {
	var in ProductInput
	if !httpx.DecodeJSON(w, r, s.MaxBody, &in) {
		return
	}
	p, err := s.CreateProduct(r.Context(), in)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Location", "/api/products/"+p.ID)
	httpx.WriteJSON(w, http.StatusCreated, p)
}

func (s *Service) handleListProducts(w http.ResponseWriter, r *http.Request) {
	ps, err := s.ListProducts(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if s.isStaff(r) {
		if ps == nil {
			ps = []Product{}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"products": ps})
		return
	}
	out := make([]publicProduct, 0, len(ps))
	for _, p := range ps {
		if p.Active {
			out = append(out, publicView(p))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"products": out})
}

func (s *Service) handleGetProduct(w http.ResponseWriter, r *http.Request) {
	p, err := s.GetProduct(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if s.isStaff(r) {
		httpx.WriteJSON(w, http.StatusOK, p)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, publicView(p))
}

// publicSKU is a SKU as anyone may see it: what is available, not how many
// units are held or sold (sales figures are the shop's business).
type publicSKU struct {
	ID        string            `json:"id"`
	Title     string            `json:"title,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	Price     *Money            `json:"price,omitempty"`
	Stock     int               `json:"stock"`
	Available int               `json:"available"`
}

// publicProduct is a Product whose "skus" are publicSKUs (the outer field
// hides the embedded one in JSON).
type publicProduct struct {
	Product
	SKUs []publicSKU `json:"skus"`
}

func publicView(p Product) publicProduct {
	out := publicProduct{Product: p, SKUs: make([]publicSKU, len(p.SKUs))}
	for i, k := range p.SKUs {
		out.SKUs[i] = publicSKU{ID: k.ID, Title: k.Title, Options: k.Options, Price: k.Price, Stock: k.Stock, Available: k.Available}
	}
	return out
}

// patchBody is ProductUpdate as PATCH sends it: the stock of the only SKU
// and of SKUs by id.
type patchBody struct {
	ProductUpdate
	Stock *int `json:"stock"`
	SKUs  []struct {
		ID    string  `json:"id"`
		Stock int     `json:"stock"`
		Title *string `json:"title"`
		// Price: absent keeps the variant's price, null gives it the
		// product's, {amount, currency} sets its own.
		Price optMoney `json:"price"`
	} `json:"skus"`
	// AddSKUs are new variants with their stock.
	AddSKUs []SKUInput `json:"add_skus"`
}

func (s *Service) handlePatchProduct(w http.ResponseWriter, r *http.Request) {
	var b patchBody
	if !httpx.DecodeJSON(w, r, s.MaxBody, &b) {
		return
	}
	u := b.ProductUpdate
	if b.Stock != nil || len(b.SKUs) > 0 {
		u.Stock = map[string]int{}
	}
	if b.Stock != nil {
		u.Stock[""] = *b.Stock
	}
	for _, k := range b.SKUs {
		u.Stock[k.ID] = k.Stock
		if k.Title != nil {
			u.SKUs = append(u.SKUs, SKUInput{ID: k.ID, Title: *k.Title})
		}
		if k.Price.set {
			u.setPrice(k.ID, k.Price.m)
		}
	}
	for _, k := range b.AddSKUs {
		if k.Stock < 0 {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "sku stock must not be negative")
			return
		}
		if u.Stock == nil {
			u.Stock = map[string]int{}
		}
		u.Stock[k.ID] = k.Stock
		u.SKUs = append(u.SKUs, k)
		if k.Price != nil {
			u.setPrice(k.ID, k.Price) // also when the variant exists
		}
	}
	p, err := s.UpdateProduct(r.Context(), r.PathValue("id"), u)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

type dealBody struct {
	Price          Money     `json:"price"`
	EndsAt         time.Time `json:"ends_at"`
	Quantity       int       `json:"quantity"`
	PerBuyer       int       `json:"per_buyer"`
	HoldTTLSeconds int       `json:"hold_ttl_seconds"`
}

func (s *Service) handlePutDeal(w http.ResponseWriter, r *http.Request) {
	var b dealBody
	if !httpx.DecodeJSON(w, r, s.MaxBody, &b) {
		return
	}
	id := r.PathValue("id")
	err := s.SetDeal(r.Context(), id, Deal{Price: b.Price, EndsAt: b.EndsAt, Quantity: b.Quantity, PerBuyer: b.PerBuyer,
		HoldTTL: time.Duration(b.HoldTTLSeconds) * time.Second})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.handleGetProduct(w, r)
}

func (s *Service) handleDeleteDeal(w http.ResponseWriter, r *http.Request) {
	if err := s.ClearDeal(r.Context(), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	s.handleGetProduct(w, r)
}

func writeCart(w http.ResponseWriter, code int, c Cart) {
	c.Buyer = ""
	httpx.WriteJSON(w, code, c)
}

func (s *Service) handleNewCart(w http.ResponseWriter, r *http.Request) {
	c, err := s.NewCart(r.Context(), s.buyer(w, r))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Location", "/api/carts/"+c.ID)
	writeCart(w, http.StatusCreated, c)
}

// cartAccess lets the cart's buyer (cookie), a holder of its secret
// (X-Cart-Secret: embedded players whose cookies the browser withholds)
// and staff at a cart; others get a 404.
func (s *Service) cartAccess(r *http.Request, id string) error {
	if s.isStaff(r) {
		return nil
	}
	c, err := s.Store.GetCart(r.Context(), id)
	if err != nil {
		return err
	}
	if b := s.buyerOf(r); b != "" && b == c.Buyer {
		return nil
	}
	if h := r.Header.Get("X-Cart-Secret"); h != "" && c.Secret != "" && subtle.ConstantTimeCompare([]byte(h), []byte(c.Secret)) == 1 {
		return nil
	}
	return errCartAccess
}

func (s *Service) handleGetCart(w http.ResponseWriter, r *http.Request) {
	if err := s.cartAccess(r, r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	c, err := s.GetCart(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handlePutCartItem(w http.ResponseWriter, r *http.Request) {
	var it CheckoutItem
	if !httpx.DecodeJSON(w, r, s.MaxBody, &it) {
		return
	}
	if err := s.cartAccess(r, r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	c, err := s.SetCartItem(r.Context(), r.PathValue("id"), it.ProductID, it.SKU, it.Quantity)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleDeleteCartItem(w http.ResponseWriter, r *http.Request) {
	if err := s.cartAccess(r, r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	c, err := s.SetCartItem(r.Context(), r.PathValue("id"), r.PathValue("product"), r.URL.Query().Get("sku"), 0)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// flexString accepts a JSON string or number (a card's event id or seq).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("card must be a string or a number")
	}
	*f = flexString(n.String())
	return nil
}

type checkoutBody struct {
	CartID   string         `json:"cart_id"`
	Items    []CheckoutItem `json:"items"`
	Stream   string         `json:"stream"`
	Card     flexString     `json:"card"`
	Source   string         `json:"source"`
	Buyer    *Contact       `json:"buyer"`
	Delivery *Delivery      `json:"delivery"`
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		httpx.WriteError(w, http.StatusBadRequest, "idempotency_key_required",
			"send an Idempotency-Key header (a fresh random value per purchase, reused on retries)")
		s.m.checkouts.WithLabelValues("invalid").Inc()
		return
	}
	var b checkoutBody
	if !httpx.DecodeJSON(w, r, s.MaxBody, &b) {
		s.m.checkouts.WithLabelValues("invalid").Inc()
		return
	}
	if b.CartID != "" {
		if err := s.cartAccess(r, b.CartID); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	buyerID := s.buyer(w, r)
	o, created, err := s.Checkout(r.Context(), CheckoutRequest{IdempotencyKey: key, Buyer: buyerID,
		CartID: b.CartID, Items: b.Items, Stream: b.Stream, Card: string(b.Card), Source: b.Source,
		Contact: b.Buyer, Delivery: b.Delivery})
	if err == nil && !created && o.Buyer != buyerID && b.CartID == "" {
		// Another buyer's key: their order is not this buyer's to see.
		httpx.WriteError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key belongs to another purchase: use a fresh one")
		return
	}
	if err != nil {
		// A 201 only ever reports an order committed as it says; anything
		// short of that (the store failed half-way) is an error, and the
		// same key resumes the order.
		s.writeErr(w, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/api/orders/"+o.ID)
	httpx.WriteJSON(w, http.StatusCreated, orderOut{buyerView(o), s.OrderURL(o)})
}

func (s *Service) handleListOrders(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "limit must be 1-10000")
			return
		}
		limit = n
	}
	f := filterFrom(r)
	all, err := s.ListOrders(r.Context(), f.Stream, limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	os := []Order{}
	for _, o := range all {
		if f.Match(&o) {
			os = append(os, staffView(o))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"orders": os})
}

func (s *Service) handleCancelOrder(w http.ResponseWriter, r *http.Request) {
	o, err := s.CancelOrder(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, staffView(o))
}

func (s *Service) handleStripeWebhook(w http.ResponseWriter, r *http.Request) {
	if s.StripeWebhookSecret == "" {
		httpx.WriteError(w, http.StatusNotFound, "not_configured", "Stripe webhooks are not configured (--stripe-webhook-secret)")
		return
	}
	body, err := httpx.ReadBody(r, 256<<10)
	if errors.Is(err, httpx.ErrBodyTooLarge) {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "webhook body too large")
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_body", "could not read the body")
		return
	}
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), s.StripeWebhookSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_signature", "webhook signature invalid or too old: "+err.Error())
		return
	}
	ctx := r.Context()
	if seen, err := s.Store.SeenEvent(ctx, ev.ID); err != nil {
		s.writeErr(w, err)
		return
	} else if seen {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"received": true, "duplicate": true})
		return
	}
	if err := s.HandleStripeEvent(ctx, ev); err != nil {
		s.writeErr(w, err) // 5xx: Stripe retries
		return
	}
	if err := s.Store.MarkEvent(ctx, ev.ID); err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"received": true})
}

// HandleStripeEvent applies a verified Stripe event to its order. The
// order is found by the PaymentIntent's metadata.order_id and must carry
// the same PaymentIntent id. Unknown orders and events are ignored.
func (s *Service) HandleStripeEvent(ctx context.Context, ev stripe.Event) error {
	if ev.Type == "charge.refunded" && ev.Data != nil {
		return s.chargeRefunded(ctx, ev)
	}
	if !strings.HasPrefix(string(ev.Type), "payment_intent.") || ev.Data == nil {
		return nil
	}
	var pi stripe.PaymentIntent
	if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
		return invalid("payment intent in event: %v", err)
	}
	o, err := s.Store.GetOrder(ctx, pi.Metadata["order_id"])
	if errors.Is(err, ErrNotFound) {
		s.log.Warn("cart: webhook for unknown order", "event", ev.ID, "intent", pi.ID)
		return nil
	}
	if err != nil {
		return err
	}
	if o.Payment.IntentID != pi.ID {
		s.log.Warn("cart: webhook intent does not match the order", "event", ev.ID, "order", o.ID, "intent", pi.ID)
		return nil
	}
	switch ev.Type {
	case "payment_intent.amount_capturable_updated", "payment_intent.succeeded":
		capture := ev.Type == "payment_intent.amount_capturable_updated"
		if o, err = s.fillFromIntent(ctx, o, &pi); err != nil {
			return err
		}
		switch o.Status {
		case StatusPending, StatusAuthorized:
			_, err = s.commitOrder(ctx, o, capture)
			return err
		case StatusCancelled, StatusExpired:
			// The stock is gone: nobody pays for it.
			return s.Payments.Void(ctx, &o)
		}
	case "payment_intent.payment_failed", "payment_intent.canceled":
		if o.Status == StatusPending || o.Status == StatusAuthorized {
			_, err = s.endOrder(ctx, o.ID, StatusCancelled)
			return err
		}
	}
	return nil
}
