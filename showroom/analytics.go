package showroom

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/streamd/streamd/cart"
	"github.com/streamd/streamd/internal/httpx"
)

// OrderLister is what the analytics need of the cart: a stream's orders,
// newest first. When Orders is nil the Catalog is used if it lists orders
// (cart.Service does), so the existing wiring serves analytics as is.
type OrderLister interface {
	ListOrders(ctx context.Context, stream string, limit int) ([]cart.Order, error)
}

// maxAnalyticsOrders bounds the orders one analytics request reads.
const maxAnalyticsOrders = 10000

// CardStats is the sales of one card (one card event: a show or an update
// such as a flash deal), as attributed by checkout's "card".
type CardStats struct {
	Card     string         `json:"card"` // card event id; "" = orders without a card
	Products []string       `json:"products"`
	Orders   int            `json:"orders"` // paid or authorized
	Units    int            `json:"units"`
	Revenue  []cart.Money   `json:"revenue"` // one entry per currency
	BySource map[string]int `json:"by_source"`
	Pending  int            `json:"pending"`
	Lost     int            `json:"lost"` // cancelled or expired
	FirstAt  time.Time      `json:"first_at"`
	LastAt   time.Time      `json:"last_at"`
}

// Analytics is the body of GET /api/streams/{id}/analytics.
type Analytics struct {
	Stream    string       `json:"stream"`
	Orders    int          `json:"orders"`
	Units     int          `json:"units"`
	Revenue   []cart.Money `json:"revenue"`
	Cards     []CardStats  `json:"cards"` // most recent sale first
	Truncated bool         `json:"truncated"`
}

// RegisterAnalytics mounts GET /api/streams/{id}/analytics (staff).
func (s *Server) RegisterAnalytics(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/streams/{id}/analytics", s.handleAnalytics)
}

func (s *Server) orderLister() OrderLister {
	if s.Orders != nil {
		return s.Orders
	}
	if l, ok := s.Catalog.(OrderLister); ok {
		return l
	}
	return nil
}

func (s *Server) handleAnalytics(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, s.StaffToken) {
		return
	}
	stream := r.PathValue("id")
	lister := s.orderLister()
	if lister == nil {
		httpx.WriteError(w, http.StatusNotImplemented, "unavailable", "analytics need an order store")
		return
	}
	if !s.requireStream(w, r, stream, "stream") {
		return
	}
	limit := maxAnalyticsOrders
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxAnalyticsOrders {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "limit must be 1-10000")
			return
		}
		limit = n
	}
	orders, err := lister.ListOrders(r.Context(), stream, limit)
	if httpx.WriteStoreUnavailable(w, err) {
		return
	}
	if err != nil {
		s.Logger.Error("analytics: list orders", "stream", stream, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not read the orders")
		return
	}
	a := Summarize(stream, orders)
	a.Truncated = len(orders) >= limit
	httpx.WriteJSON(w, http.StatusOK, a)
}

// Summarize groups a stream's orders by the card they were bought from.
func Summarize(stream string, orders []cart.Order) Analytics {
	a := Analytics{Stream: stream, Revenue: []cart.Money{}, Cards: []CardStats{}}
	byCard := map[string]*CardStats{}
	var order []string
	for _, o := range orders {
		cs := byCard[o.Card]
		if cs == nil {
			cs = &CardStats{Card: o.Card, Products: []string{}, Revenue: []cart.Money{}, BySource: map[string]int{}}
			byCard[o.Card] = cs
			order = append(order, o.Card)
		}
		for _, it := range o.Items {
			if !slices.Contains(cs.Products, it.ProductID) {
				cs.Products = append(cs.Products, it.ProductID)
			}
		}
		at := o.CreatedAt
		if cs.FirstAt.IsZero() || at.Before(cs.FirstAt) {
			cs.FirstAt = at
		}
		if at.After(cs.LastAt) {
			cs.LastAt = at
		}
		switch o.Status {
		case cart.StatusPaid, cart.StatusAuthorized:
			units := 0
			for _, it := range o.Items {
				units += it.Quantity
			}
			cs.Orders++
			cs.Units += units
			cs.Revenue = addMoney(cs.Revenue, o.Total)
			src := o.Source
			if src == "" {
				src = "api"
			}
			cs.BySource[src]++
			a.Orders++
			a.Units += units
			a.Revenue = addMoney(a.Revenue, o.Total)
		case cart.StatusPending:
			cs.Pending++
		default:
			cs.Lost++
		}
	}
	for _, c := range order {
		a.Cards = append(a.Cards, *byCard[c])
	}
	sort.SliceStable(a.Cards, func(i, j int) bool { return a.Cards[i].LastAt.After(a.Cards[j].LastAt) })
	return a
}

func addMoney(list []cart.Money, m cart.Money) []cart.Money {
	for i := range list {
		if list[i].Currency == m.Currency {
			list[i].Amount += m.Amount
			return list
		}
	}
	return append(list, m)
}
