// Package showroom is the staff side of a show: pushing product cards (with
// flash deals) onto a stream, and the pages staff and visitors use. It joins
// the catalog (cart) and the overlay: a card push sets the deal in the cart
// first — so checkout charges the deal price from the instant the card can
// appear — then publishes the card, stamped with the media clock.
package showroom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/streamd/streamd/cart"
	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/overlay"
)

// Catalog is what showroom needs of the cart.
type Catalog interface {
	GetProduct(ctx context.Context, id string) (cart.Product, error)
	SetDeal(ctx context.Context, id string, d cart.Deal) error
	ClearDeal(ctx context.Context, id string) error
}

// Overlay is what showroom needs of the overlay.
type Overlay interface {
	PublishCard(ctx context.Context, stream, action string, card json.RawMessage) (overlay.Event, error)
}

// Streams tells which streams exist.
type Streams interface {
	StreamExists(ctx context.Context, id string) (bool, error)
}

// Server serves the card API.
type Server struct {
	Catalog    Catalog
	Overlay    Overlay
	Streams    Streams
	Orders     OrderLister // analytics; nil: the Catalog when it lists orders
	StaffToken string
	// PublicURL, when set, is the base of the URLs in QR codes; else the
	// request's host, or LANURL() when that host is localhost.
	PublicURL string
	LANURL    func() string
	Logger    *slog.Logger
	Now       func() time.Time

	// Chat (chat.go): nil ChatOverlay leaves the chat API out. Signer
	// signs the viewer cookie; ChatStore nil: in memory.
	ChatOverlay ChatOverlay
	ChatStore   ChatStore
	Signer      TokenSigner
	ChatEvery   time.Duration // a viewer's budget refills one message per ChatEvery (2s)
	ChatBurst   int           // … up to ChatBurst messages (3)

	mu     sync.Mutex
	recent map[string]recentPush // idempotency key → response
}

type recentPush struct {
	at   time.Time
	body pushResponse
}

// Initialize prepares the server.
func (s *Server) Initialize() error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.recent = map[string]recentPush{}
	if s.ChatStore == nil {
		s.ChatStore = NewMemoryChatStore()
	}
	if s.ChatEvery <= 0 {
		s.ChatEvery = defaultChatEvery
	}
	if s.ChatBurst <= 0 {
		s.ChatBurst = defaultChatBurst
	}
	return nil
}

// Register mounts the card API.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/streams/{id}/cards", s.handleCard)
	s.registerQR(mux)
	s.RegisterAnalytics(mux)
	if s.ChatOverlay != nil {
		s.registerChat(mux)
	}
}

// CardRequest is the body of POST /api/streams/{id}/cards.
type CardRequest struct {
	Action    string          `json:"action"`
	ProductID string          `json:"product_id"`
	Deal      json.RawMessage `json:"deal,omitempty"` // absent: keep; null: end the deal
}

// DealRequest is a flash deal on a card: a price until ends_at (or for
// duration_s seconds), an optional cap on units and per buyer.
type DealRequest struct {
	Price          *cart.Money `json:"price"`
	EndsAt         *time.Time  `json:"ends_at,omitempty"`
	DurationS      float64     `json:"duration_s,omitempty"`
	Quantity       int         `json:"quantity,omitempty"`
	PerBuyer       int         `json:"per_buyer,omitempty"`
	HoldTTLSeconds int         `json:"hold_ttl_seconds,omitempty"`
}

// Card is what viewers receive in card events.
type Card struct {
	ProductID   string     `json:"product_id"`
	Title       string     `json:"title"`
	Description string     `json:"description,omitempty"`
	Image       string     `json:"image,omitempty"`
	Price       cart.Money `json:"price"`
	Available   int        `json:"available"`
	SKUs        []CardSKU  `json:"skus,omitempty"`
	Deal        *CardDeal  `json:"deal"`
	// PerBuyer is the product's per-buyer limit (0: none): the buy sheet's
	// quantity stops there instead of refusing after Pay.
	PerBuyer int `json:"per_buyer,omitempty"`
}

// CardSKU is a variant offered on the card.
type CardSKU struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Price is the variant's own price (absent: the card's price).
	Price     *cart.Money `json:"price,omitempty"`
	Available int         `json:"available"`
}

// CardDeal is the flash deal shown on a card.
type CardDeal struct {
	Price     cart.Money `json:"price"`
	EndsAt    time.Time  `json:"ends_at"`
	EndsAtMS  int64      `json:"ends_at_ms"`
	Quantity  int        `json:"quantity,omitempty"`
	Remaining *int       `json:"remaining,omitempty"`
	PerBuyer  int        `json:"per_buyer,omitempty"`
}

type pushResponse struct {
	EventID string `json:"event_id"`
	Seq     uint64 `json:"seq"`
	Action  string `json:"action"`
	Card    *Card  `json:"card"`
}

const maxCardBody = 8 << 10

// requireStream checks that stream id exists; otherwise it writes the error
// (404 "unknown_<kind>", or 500) and returns false. kind names the stream to
// the caller: "stream" on the staff API, "showroom" on visitor routes.
func (s *Server) requireStream(w http.ResponseWriter, r *http.Request, id, kind string) bool {
	ok, err := s.Streams.StreamExists(r.Context(), id)
	if httpx.WriteStoreUnavailable(w, err) {
		return false
	}
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not look up the "+kind)
		return false
	}
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "unknown_"+kind, "no "+kind+" "+id)
		return false
	}
	return true
}

func (s *Server) handleCard(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, s.StaffToken) {
		return
	}
	stream := r.PathValue("id")
	if !s.requireStream(w, r, stream, "stream") {
		return
	}
	var req CardRequest
	if !httpx.DecodeJSON(w, r, maxCardBody, &req) {
		return
	}
	idem := r.Header.Get("Idempotency-Key")
	if idem != "" {
		idem = stream + "\x00" + idem // keys are per stream
		if prev, ok := s.seen(idem); ok {
			w.Header().Set("Idempotent-Replayed", "true")
			httpx.WriteJSON(w, http.StatusOK, prev)
			return
		}
	}
	resp, status, code, msg := s.push(r.Context(), stream, req)
	if status == http.StatusServiceUnavailable && code == "store_unavailable" {
		w.Header().Set("Retry-After", strconv.Itoa(httpx.RetryAfterSeconds))
	}
	if status != 0 {
		httpx.WriteError(w, status, code, msg)
		return
	}
	if idem != "" {
		s.remember(idem, resp)
	}
	httpx.WriteJSON(w, http.StatusCreated, resp)
}

func (s *Server) push(ctx context.Context, stream string, req CardRequest) (pushResponse, int, string, string) {
	switch req.Action {
	case "show", "update", "hide":
	default:
		return pushResponse{}, http.StatusBadRequest, "invalid", `action must be "show", "hide" or "update"`
	}
	if req.Action == "hide" {
		ev, err := s.Overlay.PublishCard(ctx, stream, "hide", json.RawMessage("null"))
		if err != nil {
			s.Logger.Error("publish hide", "stream", stream, "err", err)
			return pushResponse{}, http.StatusServiceUnavailable, "overlay_unavailable", "could not publish the card; retry"
		}
		return pushResponse{EventID: ev.ID, Seq: ev.Seq, Action: "hide"}, 0, "", ""
	}
	if req.ProductID == "" {
		return pushResponse{}, http.StatusBadRequest, "invalid", "product_id is required to show a card"
	}
	p, err := s.Catalog.GetProduct(ctx, req.ProductID)
	if errors.Is(err, cart.ErrNotFound) {
		return pushResponse{}, http.StatusNotFound, "unknown_product", "no product " + req.ProductID
	} else if errors.Is(err, httpx.ErrStoreUnavailable) {
		return pushResponse{}, http.StatusServiceUnavailable, "store_unavailable", "the store is unreachable for a moment: retry after a few seconds"
	} else if err != nil {
		return pushResponse{}, http.StatusInternalServerError, "internal", "could not read the product"
	}
	if len(req.Deal) > 0 {
		if status, code, msg := s.applyDeal(ctx, req.ProductID, req.Deal); status != 0 {
			return pushResponse{}, status, code, msg
		}
		// Read it again: the card carries the deal the cart now holds.
		if p, err = s.Catalog.GetProduct(ctx, req.ProductID); err != nil {
			return pushResponse{}, http.StatusInternalServerError, "internal", "could not read the product"
		}
	}
	card, b := fitCard(cardOf(p, s.Now()))
	ev, err := s.Overlay.PublishCard(ctx, stream, req.Action, b)
	if err != nil {
		s.Logger.Error("publish card", "stream", stream, "err", err)
		return pushResponse{}, http.StatusServiceUnavailable, "overlay_unavailable", "could not publish the card; retry"
	}
	return pushResponse{EventID: ev.ID, Seq: ev.Seq, Action: req.Action, Card: &card}, 0, "", ""
}

// RefreshCard re-sends a stream's card (an "update") when the product
// behind the card on screen (current) was edited — title, description,
// photo, price or variants — so the edit reaches viewers without staff
// pushing it again. A card that still says what the catalog says is left
// alone (stock and deals travel by their own events).
func (s *Server) RefreshCard(ctx context.Context, stream string, current json.RawMessage) (bool, error) {
	var cur Card
	if err := json.Unmarshal(current, &cur); err != nil || cur.ProductID == "" {
		return false, nil
	}
	p, err := s.Catalog.GetProduct(ctx, cur.ProductID)
	if err != nil {
		return false, fmt.Errorf("refresh card %s: %w", cur.ProductID, err)
	}
	fresh := cardOf(p, s.Now())
	same := fresh.Title == cur.Title && fresh.Description == cur.Description && fresh.Image == cur.Image &&
		fresh.Price == cur.Price && len(fresh.SKUs) == len(cur.SKUs)
	for i := 0; same && i < len(fresh.SKUs); i++ {
		same = fresh.SKUs[i].ID == cur.SKUs[i].ID && fresh.SKUs[i].Title == cur.SKUs[i].Title &&
			cart.SamePrice(fresh.SKUs[i].Price, cur.SKUs[i].Price)
	}
	if same {
		return false, nil
	}
	if _, status, _, msg := s.push(ctx, stream, CardRequest{Action: "update", ProductID: cur.ProductID}); status != 0 {
		return false, fmt.Errorf("refresh card %s on %s: %s", cur.ProductID, stream, msg)
	}
	return true, nil
}

func (s *Server) applyDeal(ctx context.Context, productID string, raw json.RawMessage) (int, string, string) {
	if string(bytes.TrimSpace(raw)) == "null" {
		if err := s.Catalog.ClearDeal(ctx, productID); err != nil && !errors.Is(err, cart.ErrNotFound) {
			return http.StatusInternalServerError, "internal", "could not end the deal"
		}
		return 0, "", ""
	}
	var d DealRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return http.StatusBadRequest, "invalid", "deal: " + err.Error()
	}
	if d.Price == nil || d.Price.Amount <= 0 {
		return http.StatusBadRequest, "invalid", "deal.price {amount, currency} is required and must be positive"
	}
	if d.Quantity < 0 || d.PerBuyer < 0 || d.DurationS < 0 || d.HoldTTLSeconds < 0 {
		return http.StatusBadRequest, "invalid", "deal quantity, per_buyer, duration_s and hold_ttl_seconds must not be negative"
	}
	var ends time.Time
	switch {
	case d.EndsAt != nil:
		ends = *d.EndsAt
	case d.DurationS > 0:
		ends = s.Now().Add(time.Duration(d.DurationS * float64(time.Second)))
	default:
		return http.StatusBadRequest, "invalid", "deal needs ends_at (RFC 3339) or duration_s"
	}
	if !ends.After(s.Now()) {
		return http.StatusBadRequest, "invalid", "deal.ends_at is in the past"
	}
	deal := cart.Deal{Price: *d.Price, EndsAt: ends.UTC(), Quantity: d.Quantity, PerBuyer: d.PerBuyer, HoldTTL: time.Duration(d.HoldTTLSeconds) * time.Second}
	if err := s.Catalog.SetDeal(ctx, productID, deal); err != nil {
		var fe *cart.FieldError
		var ce *cart.CurrencyError
		switch {
		case errors.Is(err, cart.ErrDealPrice):
			return http.StatusUnprocessableEntity, "deal_price_not_lower", "deal refused: " + err.Error()
		case errors.As(err, &ce):
			return http.StatusUnprocessableEntity, "currency_mismatch", "deal refused: " + ce.Error()
		case errors.As(err, &fe):
			return http.StatusUnprocessableEntity, fe.Code(), "deal refused: " + fe.Error()
		case errors.Is(err, httpx.ErrStoreUnavailable):
			return http.StatusServiceUnavailable, "store_unavailable", "the store is unreachable for a moment: retry after a few seconds"
		}
		return http.StatusBadRequest, "invalid", "deal refused: " + err.Error()
	}
	return 0, "", ""
}

func cardOf(p cart.Product, now time.Time) Card {
	c := Card{ProductID: p.ID, Title: p.Title, Description: p.Description, Price: p.Price, Available: p.Available, PerBuyer: p.PerBuyerLimit}
	if len(p.Images) > 0 {
		c.Image = p.Images[0]
	}
	if len(p.SKUs) == 1 && p.SKUs[0].Price != nil {
		c.Price = *p.SKUs[0].Price // the only variant's own price is the price
	}
	if len(p.SKUs) > 1 {
		for _, sku := range p.SKUs {
			c.SKUs = append(c.SKUs, CardSKU{ID: sku.ID, Title: sku.Title, Price: sku.Price, Available: sku.Available})
		}
	}
	if p.Deal != nil && p.Deal.Active(now) {
		c.Deal = &CardDeal{Price: p.Deal.Price, EndsAt: p.Deal.EndsAt, EndsAtMS: p.Deal.EndsAt.UnixMilli(), Quantity: p.Deal.Quantity, Remaining: p.Deal.Remaining, PerBuyer: p.Deal.PerBuyer}
	}
	return c
}

// cardBudget keeps a card under the overlay's card limit (32 KiB) with
// room to spare. The cart's caps on free text keep most cards far below
// it; a product with many long-titled SKUs is sent without its description
// and then without SKU titles rather than being impossible to push.
const cardBudget = 30 << 10

func fitCard(c Card) (Card, []byte) {
	b, _ := json.Marshal(c)
	if len(b) > cardBudget {
		c.Description = ""
		b, _ = json.Marshal(c)
	}
	if len(b) > cardBudget {
		skus := make([]CardSKU, len(c.SKUs))
		for i, k := range c.SKUs {
			skus[i] = CardSKU{ID: k.ID, Price: k.Price, Available: k.Available}
		}
		c.SKUs = skus
		b, _ = json.Marshal(c)
	}
	for len(b) > cardBudget && len(c.SKUs) > 0 {
		c.SKUs = c.SKUs[:len(c.SKUs)/2]
		b, _ = json.Marshal(c)
	}
	return c, b
}

func (s *Server) seen(key string) (pushResponse, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	for k, v := range s.recent {
		if now.Sub(v.at) > time.Minute {
			delete(s.recent, k)
		}
	}
	v, ok := s.recent[key]
	return v.body, ok
}

func (s *Server) remember(key string, body pushResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recent) < 10000 {
		s.recent[key] = recentPush{at: s.Now(), body: body}
	}
}
