// Carts: each line holds stock for its buyer; lines whose hold expired
// drop out of view.

package cart

import (
	"context"
	"hash/fnv"
	"sync"
)

func (s *Service) cartLock(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &s.cartLocks[h.Sum32()%uint32(len(s.cartLocks))]
}

// NewCart creates an empty cart for a buyer.
func (s *Service) NewCart(ctx context.Context, buyer string) (Cart, error) {
	c := Cart{ID: randomID(), Buyer: buyer, Secret: randomID(), Items: []CartItem{}, UpdatedAt: s.Now()}
	return c, s.Store.PutCart(ctx, c)
}

// GetCart returns a cart; lines whose hold expired are dropped from view.
func (s *Service) GetCart(ctx context.Context, id string) (Cart, error) {
	c, err := s.Store.GetCart(ctx, id)
	if err != nil {
		return Cart{}, err
	}
	now := s.Now()
	items := c.Items[:0]
	for _, it := range c.Items {
		if it.ExpiresAt.After(now) {
			items = append(items, it)
		}
	}
	c.Items = items
	c.Total = cartTotal(c.Items)
	return c, nil
}

func cartTotal(items []CartItem) Money {
	var t Money
	for _, it := range items {
		t.Currency = it.UnitPrice.Currency
		t.Amount += it.UnitPrice.Amount * int64(it.Quantity)
	}
	return t
}

// SetCartItem sets the quantity of a product/SKU in a cart (0 removes it),
// placing or re-setting its hold.
func (s *Service) SetCartItem(ctx context.Context, cartID, productID, sku string, qty int) (Cart, error) {
	if !ValidID(productID) || (sku != "" && !ValidID(sku)) {
		return Cart{}, invalid("product_id and sku must be valid ids")
	}
	if qty < 0 || qty > 1000 {
		return Cart{}, invalid("quantity must be between 0 and 1000")
	}
	mu := s.cartLock(cartID)
	mu.Lock()
	defer mu.Unlock()
	c, err := s.GetCart(ctx, cartID)
	if err != nil {
		return Cart{}, err
	}
	p, err := s.Store.GetProduct(ctx, productID)
	if err != nil {
		return Cart{}, err
	}
	k, err := p.sku(sku)
	if err != nil {
		return Cart{}, err
	}
	holdID := "c" + cartID + "-" + k.ID
	idx := -1
	for i, it := range c.Items {
		if it.ProductID == productID && it.SKU == k.ID {
			idx = i
		}
	}
	if qty == 0 {
		if _, err := s.Store.Release(ctx, productID, holdID); err != nil {
			return Cart{}, err
		}
		if idx >= 0 {
			c.Items = append(c.Items[:idx], c.Items[idx+1:]...)
		}
	} else {
		h, err := s.Store.Reserve(ctx, ReserveRequest{HoldID: holdID, ProductID: productID, SKU: k.ID,
			Quantity: qty, Buyer: c.Buyer, TTL: s.HoldTTL, Now: s.Now()})
		if err != nil {
			return Cart{}, err
		}
		it := CartItem{OrderItem: h.item(), ExpiresAt: h.ExpiresAt}
		if idx >= 0 {
			c.Items[idx] = it
		} else {
			c.Items = append(c.Items, it)
		}
	}
	c.UpdatedAt = s.Now()
	c.Total = cartTotal(c.Items)
	if err := s.Store.PutCart(ctx, c); err != nil {
		return Cart{}, err
	}
	s.stockChanged(productID)
	return c, nil
}
