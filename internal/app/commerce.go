package app

import (
	"context"
	"encoding/json"
	"time"

	"github.com/streamd/streamd/cart"
	"github.com/streamd/streamd/overlay"
	"github.com/streamd/streamd/showroom"
)

// initCommerce wires the cart, the overlay and the showroom card API: the
// cart's stock and order events go to the overlay, the overlay stamps cards
// with the sfu's media clock, and the sfu's live changes become live events.
func (a *App) initCommerce() error {
	var store cart.Store
	var err error
	if a.rdb != nil {
		store = cart.NewRedisStore(a.rdb)
	} else if store, err = cart.NewBoltStore(a.db); err != nil {
		return err
	}
	var payments cart.Provider
	if a.Config.StripeKey != "" {
		payments = cart.NewStripeProvider(cart.StripeConfig{SecretKey: a.Config.StripeKey, WebhookSecret: a.Config.StripeWebhookSecret, APIURL: a.Config.StripeAPI})
	}

	var bus overlay.Bus
	if a.rdb != nil {
		rb := overlay.NewRedisBus(a.rdb, 1024)
		bus = rb
		a.redisBus = rb
		a.closers = append(a.closers, func() { _ = rb.Close() })
	}
	a.Overlay = &overlay.Server{Bus: bus, Clock: a.SFU, Registerer: a.reg, Logger: a.Logger.With("pkg", "overlay"), AllowedOrigins: []string{"*"}}
	if err := a.initMail(); err != nil {
		return err
	}
	a.Cart = &cart.Service{Store: store, Payments: payments, StaffToken: a.Config.StaffToken, HoldTTL: a.Config.HoldTTL,
		Notifier: orderNotifier{a.Overlay}, Registerer: a.reg, Logger: a.Logger.With("pkg", "cart"),
		Signer: a.Signer, Mailer: receiptMailer{a.Mail}, PublicURL: a.publicURL}
	a.Overlay.Stock = a.Cart
	a.Cart.Products = a.startCatalogNotifier()
	a.initImages()
	if err := a.Overlay.Initialize(); err != nil {
		return err
	}
	// Registered before the cart so that it closes after it (closers run in reverse).
	a.closers = append(a.closers, a.Overlay.Close)
	if err := a.Cart.Initialize(); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { _ = a.Cart.Close() })
	a.Showroom = &showroom.Server{Catalog: a.Cart, Overlay: a.Overlay, Streams: a.Streams, StaffToken: a.Config.StaffToken,
		PublicURL: a.Config.PublicURL, LANURL: a.PublicBase, Logger: a.Logger.With("pkg", "showroom"),
		ChatOverlay: a.Overlay, Signer: a.Signer}
	if a.rdb != nil {
		a.Showroom.ChatStore = showroom.NewRedisChatStore(a.rdb) // bans and rate limits hold on every node
	} else if a.Showroom.ChatStore, err = showroom.NewBoltChatStore(a.db); err != nil {
		return err // settings and bans outlive a restart
	}
	if err := a.Showroom.Initialize(); err != nil {
		return err
	}
	// The overlay socket asks the showroom about viewers' chat messages.
	a.Overlay.Chat = a.Showroom
	a.SFU.OnLive = a.onLive
	return nil
}

// orderNotifier adapts the overlay to the cart's Notifier: stock changes are
// re-read and coalesced by the overlay; order changes of an attributed order
// go to that stream's viewers and console, without buyer details.
type orderNotifier struct{ ov *overlay.Server }

func (n orderNotifier) StockChanged(productID string) { n.ov.StockChanged(productID) }

func (n orderNotifier) OrderChanged(o cart.Order) {
	if o.Stream == "" {
		return
	}
	type item struct {
		ProductID string `json:"product_id"`
		SKU       string `json:"sku,omitempty"`
		Quantity  int    `json:"quantity"`
	}
	items := make([]item, 0, len(o.Items))
	for _, it := range o.Items {
		items = append(items, item{it.ProductID, it.SKU, it.Quantity})
	}
	short := o.ID
	if len(short) > 8 {
		short = short[:8]
	}
	b, _ := json.Marshal(map[string]any{"ref": short, "status": o.Status, "items": items, "total": o.Total, "card": o.Card, "source": o.Source, "at": o.UpdatedAt.UnixMilli()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = n.ov.PublishEvent(ctx, o.Stream, "order", b)
}
