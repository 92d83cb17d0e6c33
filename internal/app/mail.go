package app

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/streamd/streamd/cart"
	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/mail"
)

// initMail builds the receipt sender: SMTP with --smtp, else the outbox
// folder <data>/outbox.
func (a *App) initMail() error {
	s, err := mail.New(a.Config.SMTP, a.Config.MailFrom, filepath.Join(a.Config.Data, "outbox"))
	if err != nil {
		return err
	}
	a.Mail = s
	return nil
}

// receiptMailer adapts the mail sender to the cart's Mailer.
type receiptMailer struct{ s *mail.Sender }

func (m receiptMailer) Send(ctx context.Context, r cart.Mail) error {
	return m.s.Send(ctx, mail.Message{To: r.To, Subject: r.Subject, Text: r.Text, HTML: r.HTML, Tag: r.Kind + "-" + cart.OrderRef(r.OrderID)})
}

// publicURL is the base of links in mails: --public-url when set, else the
// bound HTTP address.
func (a *App) publicURL() string {
	if a.httpLn == nil {
		return ""
	}
	return a.BaseURL()
}

// registerOutbox lists the outbox for the orders desk (staff): with no SMTP
// server the receipts are there.
func (a *App) registerOutbox(m *http.ServeMux) {
	m.HandleFunc("GET /api/outbox", func(w http.ResponseWriter, r *http.Request) {
		if !httpx.RequireStaff(w, r, a.Config.StaffToken) {
			return
		}
		es, err := a.Mail.Outbox(200)
		if err != nil {
			httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not read the outbox: "+err.Error())
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"smtp": a.Mail.UsesSMTP(), "mails": es})
	})
	m.HandleFunc("GET /api/outbox/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !httpx.RequireStaff(w, r, a.Config.StaffToken) {
			return
		}
		b, err := a.Mail.Read(r.PathValue("name"))
		if err != nil {
			httpx.WriteError(w, http.StatusNotFound, "not_found", "no such mail in the outbox")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(b)
	})
}
