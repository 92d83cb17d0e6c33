// Receipts: the confirmation mail when an order is paid and short mails
// when it ships or is refunded, rendered as HTML and text. Sending is the
// Mailer's job (SMTP or the outbox folder), off the checkout path.

package cart

import (
	"bytes"
	"context"
	htmltpl "html/template"
	"strconv"
	"strings"
	texttpl "text/template"
	"time"
)

// Mail is one rendered receipt.
type Mail struct {
	To      string
	Subject string
	Text    string
	HTML    string
	OrderID string
	Kind    string // confirmation | shipped | refunded
}

// Mailer sends receipts; internal/app wires SMTP or the outbox folder.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// receiptLine is an order line as a receipt shows it.
type receiptLine struct {
	Title    string
	Quantity int
	Amount   string
	Refunded bool
}

type receiptData struct {
	Kind, Ref, Name, Total, URL, PickupCode string
	Lines                                   []receiptLine
	Address                                 *Address
	Pickup                                  PickupPoint
	Shipment                                *Shipment
	Refunded                                string
	TestMode                                bool
}

const receiptText = `{{if eq .Kind "confirmation"}}Thank you{{if .Name}}, {{.Name}}{{end}}! Your order {{.Ref}} is confirmed.
{{else if eq .Kind "shipped"}}Your order {{.Ref}} is on its way.
{{else}}Your order {{.Ref}} was refunded: {{.Refunded}}.
{{end}}
{{range .Lines}}{{.Quantity}} × {{.Title}}  {{.Amount}}{{if .Refunded}} (refunded){{end}}
{{end}}Total: {{.Total}}
{{if .PickupCode}}
Pick it up in the showroom{{if .Pickup.Address}}: {{.Pickup.Address}}{{end}}{{if .Pickup.Note}} ({{.Pickup.Note}}){{end}}.
Show this pickup code at the desk: {{.PickupCode}}
{{else if .Address}}
Ships to: {{.Address.Line1}}{{if .Address.Line2}}, {{.Address.Line2}}{{end}}, {{.Address.PostalCode}} {{.Address.City}}, {{.Address.Country}}
{{end}}{{if .Shipment}}Carrier: {{.Shipment.Carrier}}, tracking number: {{.Shipment.Tracking}}
{{end}}
Your order: {{.URL}}
{{if .TestMode}}
TEST MODE: no real payment was taken.
{{end}}`

const receiptHTML = `<!doctype html><html><body style="font-family:system-ui,sans-serif;color:#111;max-width:560px;margin:auto">
<h2>{{if eq .Kind "confirmation"}}Thank you{{if .Name}}, {{.Name}}{{end}}! Order {{.Ref}} is confirmed{{else if eq .Kind "shipped"}}Order {{.Ref}} is on its way{{else}}Order {{.Ref}} was refunded: {{.Refunded}}{{end}}</h2>
<table style="width:100%;border-collapse:collapse">{{range .Lines}}
<tr><td style="padding:4px 0">{{.Quantity}} × {{.Title}}{{if .Refunded}} <em>(refunded)</em>{{end}}</td><td style="text-align:right">{{.Amount}}</td></tr>{{end}}
<tr><td style="padding-top:8px;border-top:1px solid #ddd"><b>Total</b></td><td style="text-align:right;padding-top:8px;border-top:1px solid #ddd"><b>{{.Total}}</b></td></tr></table>
{{if .PickupCode}}<p>Pick it up in the showroom{{if .Pickup.Address}}: {{.Pickup.Address}}{{end}}{{if .Pickup.Note}} ({{.Pickup.Note}}){{end}}.<br>Show this code at the desk:</p>
<p style="font-size:28px;letter-spacing:4px;font-family:monospace"><b>{{.PickupCode}}</b></p>
{{else if .Address}}<p>Ships to: {{.Address.Line1}}{{if .Address.Line2}}, {{.Address.Line2}}{{end}}, {{.Address.PostalCode}} {{.Address.City}}, {{.Address.Country}}</p>{{end}}
{{if .Shipment}}<p>Carrier: {{.Shipment.Carrier}} · tracking number: <b>{{.Shipment.Tracking}}</b></p>{{end}}
<p><a href="{{.URL}}">See your order</a></p>
{{if .TestMode}}<p style="color:#a60">TEST MODE: no real payment was taken.</p>{{end}}
</body></html>`

var (
	receiptTextT = texttpl.Must(texttpl.New("text").Parse(receiptText))
	receiptHTMLT = htmltpl.Must(htmltpl.New("html").Parse(receiptHTML))
)

// OrderRef is the short reference buyers and staff read out (the first 8
// characters of the id, upper case).
func OrderRef(id string) string {
	if len(id) > 8 {
		id = id[:8]
	}
	return strings.ToUpper(id)
}

// OrderURL is the buyer's page of an order (with its secret).
func (s *Service) OrderURL(o Order) string {
	base := ""
	if s.PublicURL != nil {
		base = strings.TrimRight(s.PublicURL(), "/")
	}
	return base + "/order/" + o.ID + "?t=" + o.Secret
}

// receipt queues the mail that o's move from was calls for, if any.
func (s *Service) receipt(o Order, was OrderStatus) {
	if s.Mailer == nil || o.Contact == nil || o.Contact.Email == "" || o.Status == was {
		return
	}
	kind := ""
	switch o.Status {
	case StatusPaid:
		kind = "confirmation"
	case StatusShipped:
		kind = "shipped"
	case StatusRefunded, StatusPartiallyRefunded:
		kind = "refunded"
	default:
		return
	}
	select {
	case s.mails <- mailJob{o, kind}:
	default:
		s.log.Error("cart: receipt queue full, mail not sent", "order", o.ID, "kind", kind)
	}
}

type mailJob struct {
	o    Order
	kind string
}

// mailer renders and sends queued receipts; at Close it sends what is
// queued, for a few seconds (a receipt is not lost to a restart racing the
// payment).
func (s *Service) mailer() {
	defer s.wg.Done()
	send := func(parent context.Context, j mailJob) {
		ctx, cancel := context.WithTimeout(parent, 30*time.Second)
		defer cancel()
		m, err := s.renderReceipt(ctx, j.o, j.kind)
		if err == nil {
			err = s.Mailer.Send(ctx, m)
		}
		if err != nil {
			s.log.Error("cart: receipt", "order", j.o.ID, "kind", j.kind, "err", err)
		}
	}
	for {
		select {
		case j := <-s.mails:
			send(context.Background(), j)
		case <-s.ctx.Done():
			// Shutting down: what is queued gets 5 s in all, so a dead mail
			// server cannot hold the shutdown.
			drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for drain.Err() == nil {
				select {
				case j := <-s.mails:
					send(drain, j)
				default:
					return
				}
			}
			return
		}
	}
}

func (s *Service) renderReceipt(ctx context.Context, o Order, kind string) (Mail, error) {
	d := receiptData{Kind: kind, Ref: OrderRef(o.ID), Name: o.Contact.Name, Total: formatMoney(o.Total), URL: s.OrderURL(o),
		Shipment: o.Shipment, TestMode: o.Payment.TestMode, PickupCode: o.PickupCode}
	if o.Delivery != nil {
		d.Address = o.Delivery.Address
	}
	if o.PickupCode != "" && o.Stream != "" {
		d.Pickup, _ = s.PickupPointOf(ctx, o.Stream)
	}
	var refunded int64
	for _, r := range o.Refunds {
		refunded += r.Amount.Amount
	}
	d.Refunded = formatMoney(Money{Amount: refunded, Currency: o.Total.Currency})
	for _, it := range o.Items {
		title := it.ProductID
		if p, err := s.Store.GetProduct(ctx, it.ProductID); err == nil {
			title = p.Title
		}
		d.Lines = append(d.Lines, receiptLine{Title: title, Quantity: it.Quantity, Refunded: it.Refunded,
			Amount: formatMoney(Money{Amount: it.UnitPrice.Amount * int64(it.Quantity), Currency: it.UnitPrice.Currency})})
	}
	var txt, html bytes.Buffer
	if err := receiptTextT.Execute(&txt, d); err != nil {
		return Mail{}, err
	}
	if err := receiptHTMLT.Execute(&html, d); err != nil {
		return Mail{}, err
	}
	subject := map[string]string{"confirmation": "Order " + d.Ref + " confirmed", "shipped": "Order " + d.Ref + " shipped",
		"refunded": "Order " + d.Ref + " refunded"}[kind]
	return Mail{To: o.Contact.Email, Subject: subject, Text: txt.String(), HTML: html.String(), OrderID: o.ID, Kind: kind}, nil
}

// formatMoney writes 49.00 EUR (zero-decimal currencies without decimals).
func formatMoney(m Money) string {
	cur := strings.ToUpper(m.Currency)
	switch cur {
	case "JPY", "KRW", "VND", "CLP", "ISK", "HUF":
		return fmtInt(m.Amount) + " " + cur
	}
	sign := ""
	a := m.Amount
	if a < 0 {
		sign, a = "-", -a
	}
	c := a % 100
	return sign + fmtInt(a/100) + "." + string(rune('0'+c/10)) + string(rune('0'+c%10)) + " " + cur
}

func fmtInt(v int64) string { return strconv.FormatInt(v, 10) }
