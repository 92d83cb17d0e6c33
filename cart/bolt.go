package cart

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// Buckets of the embedded store; all prefixed "cart.".
var (
	bProducts   = []byte("cart.products")   // id → boltProduct
	bHolds      = []byte("cart.holds")      // pid \0 holdID → Hold
	bHoldExp    = []byte("cart.holdexp")    // pid \0 be64(exp ms) holdID → nil
	bBuyers     = []byte("cart.buyers")     // pid \0 buyer → be64 units
	bDealBuyers = []byte("cart.dealbuyers") // pid \0 dealID \0 buyer → be64 units
	bOrders     = []byte("cart.orders")     // id → Order
	bOrderTime  = []byte("cart.ordertime")  // be64(created ns) id → nil
	bPending    = []byte("cart.pending")    // be64(exp ms) id → nil
	bIdem       = []byte("cart.idem")       // idempotency key → order id
	bCarts      = []byte("cart.carts")      // id → Cart
	bEvents     = []byte("cart.events")     // webhook event id → be64(unix)
	bClaims     = []byte("cart.claims")     // pid \0 holdID → the order that holds it
	bEmails     = []byte("cart.emails")     // pid \0 [dealID \0] sha256(email) → be64 units ordered
)

// BoltStore is the embedded Store on a bbolt file handed in by cmd/streamd.
// Writers that may run concurrently go through db.Batch (group commit):
// each call returns only after its transaction is on disk.
type BoltStore struct {
	db *bbolt.DB
}

// NewBoltStore creates the cart buckets in db.
func NewBoltStore(db *bbolt.DB) (*BoltStore, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bProducts, bHolds, bHoldExp, bBuyers, bDealBuyers, bOrders, bOrderTime, bPending, bIdem, bCarts, bEvents, bClaims, bEmails} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cart bolt store: %w", err)
	}
	return &BoltStore{db: db}, nil
}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var nul = []byte{0}

func getCount(b *bbolt.Bucket, k []byte) int {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int(int64(binary.BigEndian.Uint64(v)))
}

func addCount(b *bbolt.Bucket, k []byte, d int) error {
	n := getCount(b, k) + d
	if n <= 0 {
		return b.Delete(k)
	}
	return b.Put(k, be64(uint64(n)))
}
