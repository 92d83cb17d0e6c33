// Per-buyer limits on the buyer's email: the signed buyer cookie is counted
// when a hold is placed (Reserve); the email, which only checkout brings,
// is counted when the order is created, in the same atomic step, so a
// second browser or a cleared cookie does not buy past the limit with the
// same address.

package cart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// emailClaim is what an order takes of one per-buyer limit on its buyer's
// email: Units of ProductID at the product's PerBuyerLimit (DealID "") or
// at a flash deal's PerBuyer. The claims are stored with the order, so its
// end gives back exactly what it took, whatever the limits are by then.
type emailClaim struct {
	ProductID string `json:"product_id"`
	DealID    string `json:"deal_id,omitempty"`
	Email     string `json:"email_sha256"` // hex SHA-256 of the normalised address, never the address
	Units     int    `json:"units"`
	Limit     int    `json:"-"` // checked when the order is created
}

// cartDealMarker is the DealID of a cart line's live hold at checkout: the
// cart knows that the line is at a deal, not which (the product's current
// one is taken).
const cartDealMarker = "deal"

// normEmail is the form of an address that per-buyer limits count on.
func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// emailHash is the key part that stands for an address in the counters.
func emailHash(e string) string {
	sum := sha256.Sum256([]byte(normEmail(e)))
	return hex.EncodeToString(sum[:])
}

// countsForLimits reports whether an order's units count against the
// per-buyer limits of its email: from checkout on, pending or paid, until
// it is cancelled or expired unpaid. Refunded units stay counted (they were
// bought).
func (s OrderStatus) countsForLimits() bool { return s != StatusCancelled && s != StatusExpired }

// releasesEmail reports whether an order going from was to now gives its
// email claims back. Both ends are final, so it happens at most once.
func releasesEmail(was, now OrderStatus) bool {
	return was.countsForLimits() && !now.countsForLimits()
}

// emailClaims lists what an order of these holds takes of the per-buyer
// limits on the buyer's email (none without one): each product's units
// when it has a PerBuyerLimit, and the units held at its active flash deal
// when the deal has a PerBuyer. The Store checks and counts them when it
// creates the order.
func (s *Service) emailClaims(ctx context.Context, c *Contact, holds []Hold, now time.Time) ([]emailClaim, error) {
	if c == nil || normEmail(c.Email) == "" {
		return nil, nil
	}
	email := emailHash(c.Email)
	var claims []emailClaim
	idx := map[string]int{} // product \0 deal → its claim
	add := func(pid, deal string, limit, units int) {
		k := pid + "\x00" + deal
		if i, ok := idx[k]; ok {
			claims[i].Units += units
			return
		}
		idx[k] = len(claims)
		claims = append(claims, emailClaim{ProductID: pid, DealID: deal, Email: email, Units: units, Limit: limit})
	}
	products := map[string]Product{}
	for _, h := range holds {
		p, ok := products[h.ProductID]
		if !ok {
			var err error
			if p, err = s.Store.GetProduct(ctx, h.ProductID); err != nil {
				return nil, fmt.Errorf("per-buyer limits of %s: %w", h.ProductID, err)
			}
			products[h.ProductID] = p
		}
		if p.PerBuyerLimit > 0 {
			add(p.ID, "", p.PerBuyerLimit, h.Quantity)
		}
		if d := p.Deal; h.DealID != "" && d.Active(now) && d.PerBuyer > 0 && (h.DealID == d.ID || h.DealID == cartDealMarker) {
			add(p.ID, d.ID, d.PerBuyer, h.Quantity)
		}
	}
	return claims, nil
}

// emailLimitError is the answer to a claim the email's count cannot take:
// the same as the buyer cookie's limit at the tap.
func emailLimitError(c emailClaim, have int) *LimitError {
	return &LimitError{ProductID: c.ProductID, Limit: c.Limit, Have: have, Deal: c.DealID != ""}
}
