// Orders over HTTP: who may read an order (its buyer, by cookie or by the
// order's secret; staff), the fulfilment actions of the orders desk, the
// CSV export, and the buyer cookie itself.

package cart

import (
	"bytes"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/streamd/streamd/internal/httpx"
)

// BuyerSigner signs and checks the buyer cookie; consumed here, provided
// by internal/signer.
type BuyerSigner interface {
	Sign(purpose string, payload []byte, exp time.Time) string
	Verify(purpose, token string, now time.Time) ([]byte, error)
}

const buyerPurpose = "buyer"

func (s *Service) registerOrders(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/orders/{id}/pack", s.staff(s.handlePack))
	mux.HandleFunc("POST /api/orders/{id}/ship", s.staff(s.handleShip))
	mux.HandleFunc("POST /api/orders/{id}/pickup", s.staff(s.handlePickup))
	mux.HandleFunc("POST /api/orders/{id}/refund", s.staff(s.handleRefund))
	mux.HandleFunc("GET /api/orders/{id}/pickup.png", s.handlePickupQR)
	mux.HandleFunc("GET /api/orders.csv", s.staff(s.handleOrdersCSV))
	mux.HandleFunc("GET /api/streams/{id}/sold", s.staff(s.handleSold))
	mux.HandleFunc("GET /api/streams/{id}/pickup-point", s.handleGetPickupPoint)
	mux.HandleFunc("PUT /api/streams/{id}/pickup-point", s.staff(s.handlePutPickupPoint))
}

// buyerOf returns the buyer id of the request's signed cookie ("" if none).
func (s *Service) buyerOf(r *http.Request) string {
	c, err := r.Cookie(BuyerCookie)
	if err != nil || s.Signer == nil {
		return ""
	}
	id, err := s.Signer.Verify(buyerPurpose, c.Value, s.Now())
	if err != nil || !ValidID(string(id)) {
		return ""
	}
	return string(id)
}

// buyer returns the request's buyer id, issuing a signed HttpOnly cookie
// with a new random id when there is none. The id is the server's: a
// client cannot pick one to dodge a per-buyer limit or spend someone else's.
func (s *Service) buyer(w http.ResponseWriter, r *http.Request) string {
	if id := s.buyerOf(r); id != "" {
		return id
	}
	id := randomID()
	if s.Signer != nil {
		exp := s.Now().Add(365 * 24 * time.Hour)
		http.SetCookie(w, &http.Cookie{Name: BuyerCookie, Value: s.Signer.Sign(buyerPurpose, []byte(id), exp), Path: "/",
			Expires: exp, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	}
	return id
}

// canReadOrder: staff, the buyer's cookie, or the order's secret (?t=).
func (s *Service) canReadOrder(r *http.Request, o *Order) bool {
	if s.isStaff(r) {
		return true
	}
	if t := r.URL.Query().Get("t"); t != "" && o.Secret != "" && subtle.ConstantTimeCompare([]byte(t), []byte(o.Secret)) == 1 {
		return true
	}
	b := s.buyerOf(r)
	return b != "" && b == o.Buyer
}

// buyerView is what the buyer needs of an order: no buyer id, no
// idempotency key, no hold ids.
func buyerView(o Order) Order {
	o.Buyer, o.IdempotencyKey = "", ""
	o.Items = slices.Clone(o.Items)
	for i := range o.Items {
		o.Items[i].HoldID = ""
	}
	return o
}

func staffView(o Order) Order {
	o.Payment.ClientSecret = ""
	return o
}

// orderOut is an order as its buyer receives it, with its page's URL.
type orderOut struct {
	Order
	OrderURL string `json:"order_url"`
}

func (s *Service) handleGetOrder(w http.ResponseWriter, r *http.Request) {
	o, err := s.GetOrder(r.Context(), r.PathValue("id"))
	if err == nil && !s.canReadOrder(r, &o) {
		err = ErrNotFound // not "forbidden": the id alone says nothing
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if s.isStaff(r) {
		httpx.WriteJSON(w, http.StatusOK, staffView(o))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, orderOut{buyerView(o), s.OrderURL(o)})
}

func (s *Service) handlePickupQR(w http.ResponseWriter, r *http.Request) {
	o, err := s.GetOrder(r.Context(), r.PathValue("id"))
	if err == nil && (!s.canReadOrder(r, &o) || o.PickupCode == "") {
		err = ErrNotFound
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	png, err := qrcode.Encode(o.PickupCode, qrcode.Medium, 320)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(png)
}

func (s *Service) writeOrder(w http.ResponseWriter, o Order, err error) {
	if err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, staffView(o))
}

func (s *Service) handlePack(w http.ResponseWriter, r *http.Request) {
	o, err := s.PackOrder(r.Context(), r.PathValue("id"))
	s.writeOrder(w, o, err)
}

func (s *Service) handleShip(w http.ResponseWriter, r *http.Request) {
	var b Shipment
	if !httpx.DecodeJSON(w, r, s.MaxBody, &b) {
		return
	}
	o, err := s.ShipOrder(r.Context(), r.PathValue("id"), b.Carrier, b.Tracking)
	s.writeOrder(w, o, err)
}

func (s *Service) handlePickup(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Code string `json:"code"`
	}
	if !httpx.DecodeJSON(w, r, s.MaxBody, &b) {
		return
	}
	o, err := s.PickUpOrder(r.Context(), r.PathValue("id"), b.Code)
	s.writeOrder(w, o, err)
}

func (s *Service) handleRefund(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Lines   []int `json:"lines"`
		Restock *bool `json:"restock"`
	}
	if !httpx.DecodeJSON(w, r, s.MaxBody, &b) {
		return
	}
	o, err := s.RefundOrder(r.Context(), r.PathValue("id"), b.Lines, b.Restock)
	s.writeOrder(w, o, err)
}

func (s *Service) handleSold(w http.ResponseWriter, r *http.Request) {
	sold, err := s.SoldByProduct(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"stream": r.PathValue("id"), "sold": sold})
}

func (s *Service) handleGetPickupPoint(w http.ResponseWriter, r *http.Request) {
	p, err := s.PickupPointOf(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

func (s *Service) handlePutPickupPoint(w http.ResponseWriter, r *http.Request) {
	var p PickupPoint
	if !httpx.DecodeJSON(w, r, s.MaxBody, &p) {
		return
	}
	if err := s.SetPickupPoint(r.Context(), r.PathValue("id"), p); err != nil {
		s.writeErr(w, err)
		return
	}
	s.handleGetPickupPoint(w, r)
}

// OrderFilter selects orders for the desk and the CSV export.
type OrderFilter struct {
	Stream, Status, Delivery, Query string
}

func filterFrom(r *http.Request) OrderFilter {
	q := r.URL.Query()
	return OrderFilter{Stream: q.Get("stream"), Status: q.Get("status"), Delivery: q.Get("delivery"), Query: strings.ToLower(strings.TrimSpace(q.Get("q")))}
}

// Match reports whether o passes f. Query matches the email, the name,
// the order ref or id, or the pickup code.
func (f OrderFilter) Match(o *Order) bool {
	if f.Status != "" && string(o.Status) != f.Status {
		return false
	}
	if f.Delivery != "" && (o.Delivery == nil || o.Delivery.Method != f.Delivery) {
		return false
	}
	if f.Query == "" {
		return true
	}
	hay := []string{strings.ToLower(o.ID), strings.ToLower(o.PickupCode)}
	if o.Contact != nil {
		hay = append(hay, strings.ToLower(o.Contact.Email), strings.ToLower(o.Contact.Name))
	}
	for _, h := range hay {
		if h != "" && strings.Contains(h, f.Query) {
			return true
		}
	}
	return false
}

// csvSafe keeps a spreadsheet from reading user text as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

var csvHeader = []string{"order_ref", "order_id", "created_at", "status", "stream", "source", "buyer_name", "buyer_email",
	"delivery", "ship_name", "address_line1", "address_line2", "postal_code", "city", "country", "pickup_code", "carrier", "tracking",
	"line", "product_id", "product_title", "sku", "quantity", "unit_price", "line_total", "currency", "deal", "line_refunded",
	"order_total", "refunded_total", "payment_provider", "payment_id", "test_mode"}

func (s *Service) handleOrdersCSV(w http.ResponseWriter, r *http.Request) {
	f := filterFrom(r)
	os, err := s.ListOrders(r.Context(), f.Stream, 10000)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	titles := map[string]string{}
	if ps, err := s.ListProducts(r.Context()); err == nil {
		for _, p := range ps {
			titles[p.ID] = p.Title
		}
	}
	var buf bytes.Buffer
	buf.WriteString("\ufeff") // the BOM tells spreadsheets the file is UTF-8
	cw := csv.NewWriter(&buf)
	cw.UseCRLF = true
	_ = cw.Write(csvHeader)
	dec := func(m Money) string { return strings.TrimSuffix(formatMoney(m), " "+strings.ToUpper(m.Currency)) }
	for _, o := range os {
		if !f.Match(&o) {
			continue
		}
		var name, email, method, l1, l2, pc, city, country, carrier, tracking string
		if o.Contact != nil {
			name, email = o.Contact.Name, o.Contact.Email
		}
		if d := o.Delivery; d != nil {
			method = d.Method
			if a := d.Address; a != nil {
				l1, l2, pc, city, country = a.Line1, a.Line2, a.PostalCode, a.City, a.Country
			}
		}
		if o.Shipment != nil {
			carrier, tracking = o.Shipment.Carrier, o.Shipment.Tracking
		}
		var refunded int64
		for _, rf := range o.Refunds {
			refunded += rf.Amount.Amount
		}
		for i, it := range o.Items {
			_ = cw.Write([]string{OrderRef(o.ID), o.ID, o.CreatedAt.UTC().Format(time.RFC3339), string(o.Status), o.Stream, o.Source,
				csvSafe(name), csvSafe(email), method, csvSafe(name), csvSafe(l1), csvSafe(l2), csvSafe(pc), csvSafe(city), country,
				o.PickupCode, csvSafe(carrier), csvSafe(tracking), strconv.Itoa(i + 1), it.ProductID, csvSafe(titles[it.ProductID]), it.SKU,
				strconv.Itoa(it.Quantity), dec(it.UnitPrice), dec(Money{Amount: it.UnitPrice.Amount * int64(it.Quantity), Currency: it.UnitPrice.Currency}),
				strings.ToUpper(it.UnitPrice.Currency), strconv.FormatBool(it.Deal), strconv.FormatBool(it.Refunded),
				dec(o.Total), dec(Money{Amount: refunded, Currency: o.Total.Currency}), o.Payment.Provider, o.Payment.IntentID, strconv.FormatBool(o.Payment.TestMode)})
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		s.writeErr(w, err)
		return
	}
	name := "orders"
	if f.Stream != "" && ValidID(f.Stream) {
		name += "-" + f.Stream
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+"-"+s.Now().UTC().Format("2006-01-02")+`.csv"`)
	_, _ = w.Write(buf.Bytes())
}

// errCartAccess: the cart is someone else's (404, like a missing one).
var errCartAccess = errors.New("cart not found")
