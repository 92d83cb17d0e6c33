package cart

import (
	"context"
	"time"
)

// Store keeps the catalog, inventory, holds, deals, orders, idempotency
// records, carts and webhook event ids. Both implementations (BoltStore,
// RedisStore) pass the same conformance suite. Inventory operations are
// atomic per product; every write is durable when the call returns (for
// Redis: as durable as the server's persistence settings).
type Store interface {
	CreateProduct(ctx context.Context, p Product) error
	UpdateProduct(ctx context.Context, id string, u ProductUpdate) (Product, error)
	GetProduct(ctx context.Context, id string) (Product, error)
	ListProducts(ctx context.Context) ([]Product, error)
	// SetDeal starts a deal (a new id, nothing used yet) replacing any other.
	SetDeal(ctx context.Context, productID string, d Deal) (Deal, error)
	ClearDeal(ctx context.Context, productID string) error

	// Reserve places or re-sets a hold: *SoldOutError, *LimitError,
	// ErrNotFound, ErrInactive, ErrSKURequired, ErrUnknownSKU.
	Reserve(ctx context.Context, r ReserveRequest) (Hold, error)
	// Commit turns a live hold into sold units (idempotent); ErrHoldGone when
	// it expired or was released.
	Commit(ctx context.Context, productID, holdID string, now time.Time) (Hold, error)
	// Release gives a hold back to stock, held or committed (a cancelled
	// paid order's units return). Unknown holds are a no-op (false).
	Release(ctx context.Context, productID, holdID string) (bool, error)
	// Sweep returns expired holds to stock and reports the products that
	// changed and the number of live holds.
	Sweep(ctx context.Context, now time.Time) (changed []string, active int, err error)

	// CreateOrder stores a new order with its idempotency record, its index
	// entries and its claim on each item's hold, in one atomic step. When
	// the key is already used it returns that order and false;
	// ErrHoldClaimed when another order has one of the holds. In the same
	// step it counts the order's units on its buyer's email (o.emailClaims)
	// or refuses with the *LimitError of the first limit they would pass.
	CreateOrder(ctx context.Context, o Order) (Order, bool, error)
	GetOrder(ctx context.Context, id string) (Order, error)
	OrderByKey(ctx context.Context, idempotencyKey string) (Order, error)
	// UpdateOrder applies fn atomically (fn may run more than once). An
	// order that ends unpaid (cancelled, expired) gives its email's
	// per-buyer counts back in the same step.
	UpdateOrder(ctx context.Context, id string, fn func(*Order) error) (Order, error)
	// ListOrders lists orders, newest first, optionally of one stream.
	ListOrders(ctx context.Context, stream string, limit int) ([]Order, error)
	// ExpiredOrders lists pending orders whose holds expired by now.
	ExpiredOrders(ctx context.Context, now time.Time, limit int) ([]string, error)

	PutCart(ctx context.Context, c Cart) error
	GetCart(ctx context.Context, id string) (Cart, error)
	DeleteCart(ctx context.Context, id string) error

	// PutMeta / GetMeta keep small records beside the orders (a payment
	// intent's order, a stream's pickup point); GetMeta: ErrNotFound.
	PutMeta(ctx context.Context, key, value string) error
	GetMeta(ctx context.Context, key string) (string, error)

	// SeenEvent / MarkEvent deduplicate payment webhooks by event id.
	SeenEvent(ctx context.Context, id string) (bool, error)
	MarkEvent(ctx context.Context, id string) error
}
