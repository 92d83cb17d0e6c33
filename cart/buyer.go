// Buyer details and delivery: what fulfilment needs and no more, checked
// field by field so the buy sheet can point at each mistake.

package cart

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Contact is who bought: the receipt goes to Email.
type Contact struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Address is a postal address; Country is ISO 3166-1 alpha-2 (upper case).
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	PostalCode string `json:"postal_code"`
	City       string `json:"city"`
	Country    string `json:"country"`
}

// Delivery methods.
const (
	DeliveryShip   = "ship"
	DeliveryPickup = "pickup"
)

// Delivery says where the order goes: shipped to Address, or picked up
// in the stream's showroom.
type Delivery struct {
	Method  string   `json:"method"`
	Address *Address `json:"address,omitempty"`
}

// BuyerError lists the invalid or missing fields of a checkout (422).
type BuyerError struct{ Fields map[string]string }

func (e *BuyerError) Error() string { return fmt.Sprintf("invalid buyer details: %v", e.Fields) }

// postalRE holds the basic postal code rules of the countries a small shop
// ships to most; other countries take any 2-12 letters, digits, spaces, dashes.
var postalRE = map[string]*regexp.Regexp{
	"US": regexp.MustCompile(`^\d{5}(-\d{4})?$`),
	"DE": regexp.MustCompile(`^\d{5}$`), "FR": regexp.MustCompile(`^\d{5}$`),
	"IT": regexp.MustCompile(`^\d{5}$`), "ES": regexp.MustCompile(`^\d{5}$`),
	"FI": regexp.MustCompile(`^\d{5}$`), "AT": regexp.MustCompile(`^\d{4}$`),
	"BE": regexp.MustCompile(`^\d{4}$`), "CH": regexp.MustCompile(`^\d{4}$`),
	"DK": regexp.MustCompile(`^\d{4}$`), "NO": regexp.MustCompile(`^\d{4}$`),
	"AU": regexp.MustCompile(`^\d{4}$`), "SE": regexp.MustCompile(`^\d{3} ?\d{2}$`),
	"NL": regexp.MustCompile(`^\d{4} ?[A-Z]{2}$`), "PL": regexp.MustCompile(`^\d{2}-\d{3}$`),
	"PT": regexp.MustCompile(`^\d{4}-\d{3}$`), "JP": regexp.MustCompile(`^\d{3}-?\d{4}$`),
	"CA": regexp.MustCompile(`^[A-Z]\d[A-Z] ?\d[A-Z]\d$`),
	"GB": regexp.MustCompile(`^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$`),
	"IE": regexp.MustCompile(`^[A-Z]\d[\dW] ?[A-Z\d]{4}$`),
}

var anyPostalRE = regexp.MustCompile(`^[A-Z0-9][A-Z0-9 -]{1,11}$`)

// normalize trims the fields and upper-cases country and postal code.
func (a *Address) normalize() {
	for _, f := range []*string{&a.Line1, &a.Line2, &a.PostalCode, &a.City, &a.Country} {
		*f = strings.TrimSpace(*f)
	}
	a.Country = strings.ToUpper(a.Country)
	a.PostalCode = strings.ToUpper(a.PostalCode)
}

// ValidateBuyer normalizes and checks buyer and delivery. needContact is
// false when the payment provider collects email and address (Stripe's
// elements): then only the given fields are checked, and the method.
func ValidateBuyer(c *Contact, d *Delivery, needContact bool) error {
	f := map[string]string{}
	text := func(key, v string, max int, required bool) {
		switch {
		case v == "" && required:
			f[key] = "required"
		case utf8.RuneCountInString(v) > max:
			f[key] = fmt.Sprintf("at most %d characters", max)
		case strings.ContainsAny(v, "\r\n\x00"):
			f[key] = "one line, no control characters"
		}
	}
	if c != nil {
		c.Email, c.Name = strings.TrimSpace(c.Email), strings.TrimSpace(c.Name)
	}
	if c == nil {
		c = &Contact{}
	}
	text("buyer.name", c.Name, 100, needContact)
	text("buyer.email", c.Email, 254, needContact)
	if _, bad := f["buyer.email"]; !bad && c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email || !strings.Contains(c.Email[strings.LastIndexByte(c.Email, '@'):], ".") {
			f["buyer.email"] = "not an email address"
		}
	}
	switch {
	case d == nil || d.Method == "":
		f["delivery.method"] = "required: \"ship\" or \"pickup\""
	case d.Method == DeliveryPickup:
		d.Address = nil
	case d.Method == DeliveryShip:
		if d.Address == nil {
			if needContact {
				f["delivery.address"] = "required to ship"
			}
			break
		}
		a := d.Address
		a.normalize()
		text("delivery.address.line1", a.Line1, 100, true)
		text("delivery.address.line2", a.Line2, 100, false)
		text("delivery.address.city", a.City, 60, true)
		if a.Country == "" {
			f["delivery.address.country"] = "required"
		} else if r, err := language.ParseRegion(a.Country); err != nil || len(a.Country) != 2 || !r.IsCountry() {
			f["delivery.address.country"] = "an ISO country code such as DE, FR or US"
		}
		re := postalRE[a.Country]
		if re == nil {
			re = anyPostalRE
		}
		if a.PostalCode == "" {
			f["delivery.address.postal_code"] = "required"
		} else if !re.MatchString(a.PostalCode) {
			f["delivery.address.postal_code"] = "not a postal code of " + a.Country
		}
	default:
		f["delivery.method"] = "\"ship\" or \"pickup\""
	}
	if len(f) > 0 {
		return &BuyerError{Fields: f}
	}
	return nil
}
