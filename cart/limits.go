// Limits on what the API stores: every free-text field has a cap checked
// when it is written (422 naming the field and the limit), so a product
// always fits a card that can be pushed to viewers and nothing grows
// without bound.

package cart

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Caps in characters (runes). A card carries the title, the description,
// one image URL and the SKUs' ids and titles; JSON may escape a character
// to 6 bytes (<, >, &, control characters), so the worst case of these
// caps is what showroom keeps under the overlay's card limit.
const (
	MaxTitleLen       = 200
	MaxDescriptionLen = 2000
	MaxImageURLLen    = 1024
	MaxDataImageLen   = 4096 // a small inline image (data:image/...;base64,)
	MaxImages         = 20
	MaxSKUs           = 200
	MaxSKUTitleLen    = 100
	MaxOptions        = 10
	MaxOptionKeyLen   = 50
	MaxOptionValueLen = 100
	// maxRefLen caps references a checkout carries (stream, card, cart id).
	maxRefLen = 128
)

// FieldError says a field broke a limit (Limit > 0: its length in
// characters) or a rule; the API answers 422 naming both.
type FieldError struct {
	Field string
	Limit int
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Code is the API error code: "too_long" for a length cap, else "invalid_field".
func (e *FieldError) Code() string {
	if e.Limit > 0 {
		return "too_long"
	}
	return "invalid_field"
}

func fieldErr(field string, limit int, msg string) error {
	return &FieldError{Field: field, Limit: limit, Msg: msg}
}

// capText refuses text longer than limit characters or not UTF-8.
func capText(field, s string, limit int) error {
	if !utf8.ValidString(s) {
		return fieldErr(field, 0, "must be UTF-8 text")
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return fieldErr(field, limit, fmt.Sprintf("is at most %d characters (got %d)", limit, n))
	}
	return nil
}

var dataImageRE = regexp.MustCompile(`^data:image/(png|jpeg|gif|webp|avif|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}$`)

// checkImage accepts an http(s) URL, a site-relative path ("/static/...")
// or a small inline image (data:image/<png|jpeg|gif|webp|avif|svg+xml>;base64).
// javascript:, other data: URLs, protocol-relative "//host" and the like
// are refused: pages put these URLs in <img src> and links.
func checkImage(field, s string) error {
	bad := func() error {
		return fieldErr(field, 0, "must be an http(s) URL, a path on this site starting with /, or a base64 data:image/... URL")
	}
	if strings.HasPrefix(strings.ToLower(s), "data:") {
		if err := capText(field, s, MaxDataImageLen); err != nil {
			return err
		}
		if !dataImageRE.MatchString(s) {
			return bad()
		}
		return nil
	}
	if err := capText(field, s, MaxImageURLLen); err != nil {
		return err
	}
	if s == "" || strings.ContainsAny(s, " \t\r\n\\<>\"'") {
		return bad()
	}
	if strings.HasPrefix(s, "/") {
		if strings.HasPrefix(s, "//") {
			return bad()
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad()
	}
	return nil
}

func checkImages(images []string) error {
	if len(images) > MaxImages {
		return fieldErr("images", 0, fmt.Sprintf("at most %d images", MaxImages))
	}
	for i, im := range images {
		if err := checkImage(fmt.Sprintf("images[%d]", i), im); err != nil {
			return err
		}
	}
	return nil
}

// checkSKUText checks a SKU's title and options.
func checkSKUText(i int, k SKUInput) error {
	f := fmt.Sprintf("skus[%d]", i)
	if err := capText(f+".title", k.Title, MaxSKUTitleLen); err != nil {
		return err
	}
	if len(k.Options) > MaxOptions {
		return fieldErr(f+".options", 0, fmt.Sprintf("at most %d options", MaxOptions))
	}
	for name, v := range k.Options {
		if err := capText(f+".options (name)", name, MaxOptionKeyLen); err != nil {
			return err
		}
		if err := capText(f+".options."+name, v, MaxOptionValueLen); err != nil {
			return err
		}
	}
	return nil
}
