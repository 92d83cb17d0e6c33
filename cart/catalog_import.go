// Catalog import and export in Shopify's product CSV format:
// POST /api/products/import (text/csv, staff, ?dry_run=1 previews) and
// GET /api/products.csv (staff).

package cart

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/streamd/streamd/internal/httpx"
)

// maxImportBytes caps an import body: a 10,000-variant Shopify export is
// about 3 MiB.
const maxImportBytes = 16 << 20

// ImportResult says what an import did (or, in a dry run, would do).
// Unchanged products are in neither count: re-importing the same file
// changes nothing.
type ImportResult struct {
	Created   int           `json:"created"`
	Updated   int           `json:"updated"`
	Unchanged int           `json:"unchanged"`
	Errors    []ImportError `json:"errors"`
	DryRun    bool          `json:"dry_run"`
}

// ImportShopify applies a Shopify product CSV: the handle is the product id,
// each variant row a SKU with its on-hand stock, image URLs are kept as
// references. Products with a bad row are reported and left alone; the
// others are created or updated by handle. With dryRun nothing is written.
func (s *Service) ImportShopify(ctx context.Context, r io.Reader, currency string, dryRun bool) (ImportResult, error) {
	res := ImportResult{DryRun: dryRun, Errors: []ImportError{}}
	if currency == "" {
		currency = s.defaultCurrency(ctx)
	}
	currency = strings.ToLower(currency)
	if !currencyRE.MatchString(currency) {
		return res, invalid("currency must be an ISO 4217 code like \"eur\"")
	}
	ps, errs, err := parseShopifyCSV(r, currency)
	if err != nil {
		return res, err
	}
	res.Errors = append(res.Errors, errs...)
	fail := func(ip importedProduct, err error) {
		msg := strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
		res.Errors = append(res.Errors, ImportError{Row: ip.row, Handle: ip.in.ID, Message: msg})
	}
	for _, ip := range ps {
		in := ip.in
		if ip.defaultOnly {
			in.Stock = ip.onHand[DefaultSKU]
		}
		for i := range in.SKUs {
			in.SKUs[i].Stock = ip.onHand[in.SKUs[i].ID]
		}
		// Created or updated, an imported product obeys the rules of a new one.
		if _, err := newProduct(in); err != nil {
			fail(ip, err)
			continue
		}
		cur, err := s.Store.GetProduct(ctx, in.ID)
		if errors.Is(err, ErrNotFound) {
			if !dryRun {
				if _, err := s.CreateProduct(ctx, in); err != nil {
					fail(ip, err)
					continue
				}
			}
			res.Created++
			continue
		}
		if err != nil {
			return res, err
		}
		u, changed, err := importUpdate(cur, in, ip)
		if err != nil {
			fail(ip, err)
			continue
		}
		if !changed {
			res.Unchanged++
			continue
		}
		if !dryRun {
			if _, err := s.UpdateProduct(ctx, in.ID, u); err != nil {
				fail(ip, err)
				continue
			}
		}
		res.Updated++
	}
	sort.Slice(res.Errors, func(i, j int) bool { return res.Errors[i].Row < res.Errors[j].Row })
	return res, nil
}

// importUpdate is the update that makes cur what the CSV says. Stock is
// on hand in the CSV: what was sold here stays sold, so the stock becomes
// on-hand + sold. Variants missing from the CSV are left as they are.
func importUpdate(cur Product, in ProductInput, ip importedProduct) (ProductUpdate, bool, error) {
	var u ProductUpdate
	changed := false
	if in.Title != cur.Title {
		u.Title, changed = &in.Title, true
	}
	if in.Description != cur.Description {
		u.Description, changed = &in.Description, true
	}
	if in.Images == nil {
		in.Images = []string{}
	}
	if !slices.Equal(in.Images, cur.Images) {
		u.Images, changed = in.Images, true
	}
	if in.Price != cur.Price {
		u.Price, changed = &in.Price, true
	}
	if active := in.Active == nil || *in.Active; active != cur.Active {
		u.Active, changed = &active, true
	}
	u.Stock = map[string]int{}
	have := map[string]SKU{}
	for _, k := range cur.SKUs {
		have[k.ID] = k
	}
	if ip.defaultOnly {
		k, ok := have[DefaultSKU]
		if !ok {
			return u, false, invalid("the product has variants here: list them in the CSV (Variant SKU)")
		}
		if want := ip.onHand[DefaultSKU] + k.Sold; want != k.Stock {
			u.Stock[DefaultSKU], changed = want, true
		}
	}
	for _, k := range in.SKUs {
		old, ok := have[k.ID]
		want := ip.onHand[k.ID] + old.Sold
		if !ok || want != old.Stock {
			u.Stock[k.ID], changed = want, true
		}
		if !ok || k.Title != old.Title {
			u.SKUs, changed = append(u.SKUs, k), true
		}
		if ok && !SamePrice(k.Price, old.Price) {
			u.setPrice(k.ID, k.Price)
			changed = true
		}
	}
	if len(u.Stock) == 0 {
		u.Stock = nil
	}
	return u, changed, nil
}

// defaultCurrency is the catalog's currency (Shopify's CSV has none): that
// of the first product, else euros.
func (s *Service) defaultCurrency(ctx context.Context) string {
	ps, err := s.Store.ListProducts(ctx)
	if err == nil && len(ps) > 0 {
		return ps[0].Price.Currency
	}
	return "eur"
}

func (s *Service) handleImport(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "text/csv") && !strings.HasPrefix(ct, "text/plain") && !strings.HasPrefix(ct, "application/vnd.ms-excel") {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the CSV file as the body with Content-Type: text/csv")
		return
	}
	body, err := httpx.ReadBody(r, maxImportBytes)
	if errors.Is(err, httpx.ErrBodyTooLarge) {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the CSV is over 16 MiB: split it into several files")
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_body", "could not read the body")
		return
	}
	q := r.URL.Query()
	dry := q.Get("dry_run") == "1" || q.Get("dry_run") == "true"
	res, err := s.ImportShopify(r.Context(), bytes.NewReader(body), q.Get("currency"), dry)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (s *Service) handleExport(w http.ResponseWriter, r *http.Request) {
	ps, err := s.ListProducts(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	var buf bytes.Buffer
	if err := writeShopifyCSV(&buf, ps); err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="products.csv"`)
	_, _ = w.Write(buf.Bytes())
}
