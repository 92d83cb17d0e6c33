// The catalog side of the Service: validating and storing products.

package cart

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ProductInput is the body of POST /api/products.
type ProductInput struct {
	ID            string     `json:"id"`
	Title         string     `json:"title"`
	Description   string     `json:"description,omitempty"`
	Images        []string   `json:"images,omitempty"`
	Price         Money      `json:"price"`
	Stock         int        `json:"stock"`
	Active        *bool      `json:"active,omitempty"`
	PerBuyerLimit int        `json:"per_buyer_limit,omitempty"`
	SKUs          []SKUInput `json:"skus,omitempty"`
}

// SKUInput is one SKU of a ProductInput.
type SKUInput struct {
	ID      string            `json:"id"`
	Title   string            `json:"title,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	Stock   int               `json:"stock"`
	// Price is the variant's own price (absent: the product's).
	Price *Money `json:"price,omitempty"`
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func checkMoney(m *Money) error {
	m.Currency = strings.ToLower(m.Currency)
	if !currencyRE.MatchString(m.Currency) {
		return invalid("price.currency must be an ISO 4217 code like \"eur\"")
	}
	if m.Amount < 0 || m.Amount > maxPriceAmount {
		return invalid("price.amount must be a non-negative integer in minor units")
	}
	return nil
}

// newProduct validates a ProductInput into a new product definition (the
// same rules for the API, the console and CSV imports).
func newProduct(in ProductInput) (Product, error) {
	if !ValidID(in.ID) {
		return Product{}, invalid("id must be 1-64 letters, digits, '_', '-' or '.'")
	}
	if in.Title == "" {
		return Product{}, invalid("title is required")
	}
	if err := checkProductText(&in.Title, &in.Description, in.Images); err != nil {
		return Product{}, err
	}
	if err := checkMoney(&in.Price); err != nil {
		return Product{}, err
	}
	if in.Stock < 0 || in.PerBuyerLimit < 0 {
		return Product{}, invalid("stock and per_buyer_limit must not be negative")
	}
	if len(in.SKUs) > MaxSKUs {
		return Product{}, fieldErr("skus", 0, fmt.Sprintf("at most %d SKUs", MaxSKUs))
	}
	p := Product{ID: in.ID, Title: in.Title, Description: in.Description, Images: in.Images, Price: in.Price,
		Active: in.Active == nil || *in.Active, PerBuyerLimit: in.PerBuyerLimit}
	if p.Images == nil {
		p.Images = []string{}
	}
	if len(in.SKUs) == 0 {
		p.SKUs = []SKU{{ID: DefaultSKU, Stock: in.Stock}}
	}
	seen := map[string]bool{}
	for i, k := range in.SKUs {
		if err := checkSKUText(i, k); err != nil {
			return Product{}, err
		}
		if !ValidID(k.ID) || seen[k.ID] {
			return Product{}, invalid("sku ids must be unique, 1-64 letters, digits, '_', '-' or '.'")
		}
		if k.Stock < 0 {
			return Product{}, invalid("sku stock must not be negative")
		}
		price, err := skuPrice(fmt.Sprintf("skus[%d].price", i), k.Price, p.Price)
		if err != nil {
			return Product{}, err
		}
		seen[k.ID] = true
		p.SKUs = append(p.SKUs, SKU{ID: k.ID, Title: k.Title, Options: k.Options, Stock: k.Stock, Price: price})
	}
	return p, nil
}

// CreateProduct validates and stores a product (active unless said otherwise).
func (s *Service) CreateProduct(ctx context.Context, in ProductInput) (Product, error) {
	p, err := newProduct(in)
	if err != nil {
		return Product{}, err
	}
	if err := s.Store.CreateProduct(ctx, p); err != nil {
		return Product{}, err
	}
	s.stockChanged(p.ID)
	s.productChanged(p.ID)
	return s.Store.GetProduct(ctx, p.ID)
}

// checkProductText checks the free text of a product (nil: not sent).
func checkProductText(title, description *string, images []string) error {
	if title != nil {
		if err := capText("title", *title, MaxTitleLen); err != nil {
			return err
		}
	}
	if description != nil {
		if err := capText("description", *description, MaxDescriptionLen); err != nil {
			return err
		}
	}
	return checkImages(images)
}

// UpdateProduct applies a partial update.
func (s *Service) UpdateProduct(ctx context.Context, id string, u ProductUpdate) (Product, error) {
	if u.Title != nil && *u.Title == "" {
		return Product{}, invalid("title must not be empty")
	}
	if err := checkProductText(u.Title, u.Description, u.Images); err != nil {
		return Product{}, err
	}
	if u.Price != nil {
		if err := checkMoney(u.Price); err != nil {
			return Product{}, err
		}
	}
	for _, n := range u.Stock {
		if n < 0 {
			return Product{}, invalid("stock must not be negative")
		}
	}
	if u.PerBuyerLimit != nil && *u.PerBuyerLimit < 0 {
		return Product{}, invalid("per_buyer_limit must not be negative")
	}
	if len(u.SKUs) > 0 {
		if err := s.prepareSKUs(ctx, id, &u); err != nil {
			return Product{}, err
		}
	}
	if err := s.checkSKUPrices(ctx, id, &u); err != nil {
		return Product{}, err
	}
	p, err := s.Store.UpdateProduct(ctx, id, u)
	if err != nil {
		return Product{}, err
	}
	s.stockChanged(id)
	s.productChanged(id)
	return p, nil
}

// prepareSKUs checks the variants of an update and lets the first real
// ones replace a product's implicit SKU when nothing was held or sold of it.
func (s *Service) prepareSKUs(ctx context.Context, id string, u *ProductUpdate) error {
	seen := map[string]bool{}
	for i, k := range u.SKUs {
		if err := checkSKUText(i, k); err != nil {
			return err
		}
		if !ValidID(k.ID) || seen[k.ID] {
			return invalid("sku ids must be unique, 1-64 letters, digits, '_', '-' or '.'")
		}
		seen[k.ID] = true
	}
	cur, err := s.Store.GetProduct(ctx, id)
	if err != nil {
		return err
	}
	if len(cur.SKUs)+len(u.SKUs) > 200 {
		return invalid("at most 200 SKUs")
	}
	if len(cur.SKUs) == 1 && cur.SKUs[0].ID == DefaultSKU && !seen[DefaultSKU] {
		d := cur.SKUs[0]
		u.DropDefault = d.Held == 0 && d.Sold == 0
	}
	return nil
}

// ProductNotifier hears that a product's definition changed (created,
// edited, archived, imported): the app tells open consoles and players.
type ProductNotifier interface {
	ProductChanged(productID string)
}

func (s *Service) productChanged(id string) {
	if s.Products != nil {
		s.Products.ProductChanged(id)
	}
}

// GetProduct returns a product with availability and its active deal.
func (s *Service) GetProduct(ctx context.Context, id string) (Product, error) {
	return s.Store.GetProduct(ctx, id)
}

// ListProducts returns the catalog.
func (s *Service) ListProducts(ctx context.Context) ([]Product, error) {
	return s.Store.ListProducts(ctx)
}

// Available is the product's units for sale now (all SKUs).
func (s *Service) Available(ctx context.Context, productID string) (int, error) {
	p, err := s.Store.GetProduct(ctx, productID)
	if err != nil {
		return 0, err
	}
	// During a capped flash deal what a viewer can buy now is what is left
	// of the deal: "sold out" must reach every screen when the cap is hit.
	// (The store returns only an active deal, with Remaining when capped.)
	if d := p.Deal; d != nil && d.Remaining != nil {
		return min(p.Available, *d.Remaining), nil
	}
	return p.Available, nil
}

// SeedDemo creates a small demo catalog; products that exist are left alone.
func (s *Service) SeedDemo(ctx context.Context) error {
	yes := true
	demo := []ProductInput{
		{ID: "tee-classic", Title: "Classic tee", Description: "Organic cotton T-shirt", Images: []string{"/static/demo/tee.jpg"},
			Price: Money{Amount: 2900, Currency: "eur"}, Active: &yes, SKUs: []SKUInput{
				{ID: "tee-s-black", Title: "S / black", Options: map[string]string{"size": "S", "colour": "black"}, Stock: 20},
				{ID: "tee-m-black", Title: "M / black", Options: map[string]string{"size": "M", "colour": "black"}, Stock: 30},
				{ID: "tee-l-white", Title: "L / white", Options: map[string]string{"size": "L", "colour": "white"}, Stock: 25},
			}},
		{ID: "mug-studio", Title: "Studio mug", Description: "Stoneware mug, 350 ml", Images: []string{"/static/demo/mug.jpg"},
			Price: Money{Amount: 1500, Currency: "eur"}, Stock: 50, Active: &yes},
		{ID: "sneaker-drop", Title: "Limited sneaker", Description: "Numbered drop, one pair per buyer", Images: []string{"/static/demo/sneaker.jpg"},
			Price: Money{Amount: 12900, Currency: "eur"}, Stock: 10, PerBuyerLimit: 1, Active: &yes},
	}
	for _, p := range demo {
		if _, err := s.CreateProduct(ctx, p); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("seed %s: %w", p.ID, err)
		}
	}
	return nil
}
