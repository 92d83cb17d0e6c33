// Shopify's product CSV: reading it into ProductInputs and writing the
// catalog back out in the same format, so a shop moves its catalog in from a
// Shopify (or WooCommerce, via Shopify's format) export and back out.
//
// The format: one row per variant, grouped by Handle. The first row of a
// handle carries the product (Title, Body (HTML), Status…); later rows carry
// only option values and variant columns, or only an extra Image Src.

package cart

import (
	"encoding/csv"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	xhtml "golang.org/x/net/html"
)

// shopifyColumns are the columns written on export, in Shopify's order; on
// import only the ones below are read and any others are ignored.
var shopifyColumns = []string{"Handle", "Title", "Body (HTML)", "Vendor", "Type", "Tags", "Published",
	"Option1 Name", "Option1 Value", "Option2 Name", "Option2 Value", "Option3 Name", "Option3 Value",
	"Variant SKU", "Variant Inventory Tracker", "Variant Inventory Qty", "Variant Inventory Policy",
	"Variant Fulfillment Service", "Variant Price", "Variant Requires Shipping", "Variant Taxable",
	"Image Src", "Image Position", "Gift Card", "Status"}

// ImportError is one refused product of an import: the CSV row (1 = the
// header) where the problem is, the product's handle and what to fix.
type ImportError struct {
	Row     int    `json:"row"`
	Handle  string `json:"handle"`
	Message string `json:"message"`
}

// importedProduct is one product read from the CSV with the row it starts on.
type importedProduct struct {
	row int
	in  ProductInput
	// onHand is each SKU's on-hand quantity (Variant Inventory Qty).
	onHand map[string]int
	// defaultOnly: one variant without options or SKU (the implicit SKU).
	defaultOnly bool
	// optNames: Shopify names the options on a product's first row only.
	optNames [3]string
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a SKU id from a handle and option values when Variant SKU is empty.
func slug(parts ...string) string {
	s := strings.Trim(slugRE.ReplaceAllString(strings.ToLower(strings.Join(parts, "-")), "-"), "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// htmlText turns Body (HTML) into the plain text the pages show.
func htmlText(s string) string {
	if !strings.Contains(s, "<") && !strings.Contains(s, "&") {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	z := xhtml.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return strings.Join(strings.Fields(b.String()), " ")
		case xhtml.TextToken:
			b.Write(z.Text())
		case xhtml.StartTagToken, xhtml.EndTagToken, xhtml.SelfClosingTagToken:
			b.WriteByte(' ') // <p>a</p><p>b</p> is "a b", not "ab"
		}
	}
}

// parsePrice reads "29.00" (major units, '.' or ',' decimal) into minor units.
func parsePrice(s string) (int64, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", ".")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e9 || math.IsNaN(f) {
		return 0, fmt.Errorf("Variant Price %q is not a price like 29.00", s)
	}
	return int64(math.Round(f * 100)), nil
}

// ParseShopifyCSV reads a Shopify product CSV. Products with a bad row are
// left out and reported; the rest are returned in file order.
func parseShopifyCSV(r io.Reader, currency string) ([]importedProduct, []ImportError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, invalid("the CSV has no header row: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, need := range []string{"Handle", "Title", "Variant Price"} {
		if _, ok := col[need]; !ok {
			return nil, nil, invalid("the CSV has no %q column: export products from Shopify (Products → Export → CSV)", need)
		}
	}
	var (
		out    []*importedProduct
		byID   = map[string]*importedProduct{}
		bad    = map[string]bool{}
		errs   []ImportError
		rowNum = 1
	)
	fail := func(row int, handle, format string, a ...any) {
		if !bad[handle] {
			errs = append(errs, ImportError{Row: row, Handle: handle, Message: fmt.Sprintf(format, a...)})
		}
		bad[handle] = true
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		rowNum++
		if err != nil {
			return nil, nil, invalid("CSV row %d: %v", rowNum, err)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		handle := get("Handle")
		if handle == "" {
			if strings.Join(rec, "") != "" {
				fail(rowNum, "", "the row has no Handle")
			}
			continue
		}
		if !ValidID(handle) {
			fail(rowNum, handle, "Handle must be 1-64 letters, digits, '_', '-' or '.'")
			continue
		}
		p := byID[handle]
		if p == nil {
			p = &importedProduct{row: rowNum, in: ProductInput{ID: handle}, onHand: map[string]int{}}
			byID[handle] = p
			out = append(out, p)
		}
		if t := get("Title"); t != "" && p.in.Title == "" {
			p.in.Title = t
			p.in.Description = htmlText(get("Body (HTML)"))
			active := true
			switch strings.ToLower(get("Status")) {
			case "draft", "archived":
				active = false
			}
			if strings.EqualFold(get("Published"), "false") {
				active = false
			}
			p.in.Active = &active
		}
		if img := get("Image Src"); img != "" {
			p.in.Images = append(p.in.Images, img)
		}
		if get("Variant Price") == "" && get("Variant SKU") == "" && get("Option1 Value") == "" {
			continue // an image-only row
		}
		price, err := parsePrice(get("Variant Price"))
		if err != nil {
			fail(rowNum, handle, "%v", err)
			continue
		}
		qty := 0
		if q := get("Variant Inventory Qty"); q != "" {
			if qty, err = strconv.Atoi(q); err != nil {
				fail(rowNum, handle, "Variant Inventory Qty %q is not a whole number", q)
				continue
			}
			qty = max(qty, 0) // Shopify allows overselling into negatives; none is left
		}
		// The first variant's price is the product's; a variant priced
		// otherwise gets its own price.
		var own *Money
		if len(p.in.SKUs) == 0 && !p.defaultOnly && p.in.Price.Currency == "" {
			p.in.Price = Money{Amount: price, Currency: currency}
		} else if price != p.in.Price.Amount {
			own = &Money{Amount: price, Currency: currency}
		}
		var titles []string
		opts := map[string]string{}
		for i := 1; i <= 3; i++ {
			n, v := get(fmt.Sprintf("Option%d Name", i)), get(fmt.Sprintf("Option%d Value", i))
			if v == "" || (n == "Title" && v == "Default Title") {
				continue
			}
			if n != "" {
				p.optNames[i-1] = n
			} else if n = p.optNames[i-1]; n == "" {
				n = fmt.Sprintf("option%d", i)
			}
			opts[strings.ToLower(n)] = v
			titles = append(titles, v)
		}
		id := get("Variant SKU")
		if len(titles) == 0 && id == "" {
			if len(p.in.SKUs) > 0 || p.defaultOnly {
				fail(rowNum, handle, "a second variant needs option values or a Variant SKU")
				continue
			}
			p.defaultOnly = true
			p.onHand[DefaultSKU] = qty
			continue
		}
		if id == "" {
			id = slug(append([]string{handle}, titles...)...)
		}
		if !ValidID(id) {
			fail(rowNum, handle, "Variant SKU %q must be 1-64 letters, digits, '_', '-' or '.'", id)
			continue
		}
		if _, dup := p.onHand[id]; dup || p.defaultOnly {
			fail(rowNum, handle, "variant %q appears twice", id)
			continue
		}
		if len(opts) == 0 {
			opts = nil
		}
		p.in.SKUs = append(p.in.SKUs, SKUInput{ID: id, Title: strings.Join(titles, " / "), Options: opts, Price: own})
		p.onHand[id] = qty
	}
	var good []importedProduct
	for _, p := range out {
		if bad[p.in.ID] {
			continue
		}
		if p.in.Title == "" {
			fail(p.row, p.in.ID, "the product's first row needs a Title")
			continue
		}
		if len(p.in.SKUs) == 0 && !p.defaultOnly {
			fail(p.row, p.in.ID, "the product has no variant row with a Variant Price")
			continue
		}
		good = append(good, *p)
	}
	return good, errs, nil
}

// writeShopifyCSV writes products in Shopify's product CSV format. The
// inventory quantity is what is on hand (stock not yet sold).
func writeShopifyCSV(w io.Writer, ps []Product) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(shopifyColumns); err != nil {
		return err
	}
	idx := map[string]int{}
	for i, c := range shopifyColumns {
		idx[c] = i
	}
	for _, p := range ps {
		// Option names in the order the first SKU's title names their
		// values ("S / Sand": size, then colour), else sorted.
		var names []string
		if len(p.SKUs) > 0 {
			first := p.SKUs[0]
			for k := range first.Options {
				names = append(names, k)
			}
			pos := func(n string) int {
				if i := strings.Index(first.Title, first.Options[n]); i >= 0 {
					return i
				}
				return len(first.Title)
			}
			sort.Slice(names, func(i, j int) bool {
				if a, b := pos(names[i]), pos(names[j]); a != b {
					return a < b
				}
				return names[i] < names[j]
			})
			if len(names) > 3 {
				names = names[:3]
			}
		}
		rows := max(len(p.SKUs), len(p.Images))
		for i := range rows {
			rec := make([]string, len(shopifyColumns))
			set := func(c, v string) { rec[idx[c]] = v }
			set("Handle", p.ID)
			if i == 0 {
				set("Title", p.Title)
				if p.Description != "" {
					set("Body (HTML)", "<p>"+html.EscapeString(p.Description)+"</p>")
				}
				set("Published", strings.ToUpper(strconv.FormatBool(p.Active)))
				set("Gift Card", "FALSE")
				status := "active"
				if !p.Active {
					status = "archived"
				}
				set("Status", status)
			}
			if i < len(p.SKUs) {
				k := p.SKUs[i]
				if k.ID == DefaultSKU && len(p.SKUs) == 1 {
					set("Option1 Name", "Title")
					set("Option1 Value", "Default Title")
				} else {
					set("Variant SKU", k.ID)
					if len(names) == 0 && k.Title != "" {
						if i == 0 {
							set("Option1 Name", "Variant")
						}
						set("Option1 Value", k.Title)
					}
					for j, n := range names {
						if i == 0 {
							set(fmt.Sprintf("Option%d Name", j+1), titleCase(n))
						}
						set(fmt.Sprintf("Option%d Value", j+1), k.Options[n])
					}
				}
				set("Variant Inventory Tracker", "shopify")
				set("Variant Inventory Qty", strconv.Itoa(k.Stock-k.Sold))
				set("Variant Inventory Policy", "deny")
				set("Variant Fulfillment Service", "manual")
				price := p.unitPrice(&k)
				set("Variant Price", fmt.Sprintf("%d.%02d", price.Amount/100, price.Amount%100))
				set("Variant Requires Shipping", "TRUE")
				set("Variant Taxable", "TRUE")
			}
			if i < len(p.Images) {
				set("Image Src", p.Images[i])
				set("Image Position", strconv.Itoa(i+1))
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
