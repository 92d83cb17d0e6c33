// Package mail sends streamd's mails (order receipts): over SMTP with
// go-mail when --smtp is set, else into an outbox folder under the data
// dir, one .eml file per mail, which the orders desk lists — so a shop
// without a mail server (and `make run`) still sees every receipt.
package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one mail with an HTML and a text body.
type Message struct {
	To, Subject, Text, HTML string
	// Tag names the outbox file (e.g. "confirmation-1A2B3C4D").
	Tag string
}

// Sender sends through SMTP or writes to the outbox.
type Sender struct {
	from   string
	client *gomail.Client // nil: outbox
	outbox string
	seq    atomic.Int64
	smtp   string // host:port, for errors
}

// New configures a Sender. smtpURL is smtp://user:pass@host:port (STARTTLS
// when offered; smtps:// for TLS from the start) or "" for the outbox
// folder outboxDir.
func New(smtpURL, from, outboxDir string) (*Sender, error) {
	if from == "" {
		from = "streamd <no-reply@localhost>"
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("--mail-from %q: %w", from, err)
	}
	s := &Sender{from: from, outbox: outboxDir}
	if smtpURL == "" {
		if err := os.MkdirAll(outboxDir, 0o755); err != nil {
			return nil, fmt.Errorf("outbox %s: %w", outboxDir, err)
		}
		return s, nil
	}
	u, err := url.Parse(smtpURL)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return nil, fmt.Errorf("--smtp %q: want smtp://user:pass@host:587 or smtps://…:465", smtpURL)
	}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("--smtp port %q: %w", p, err)
		}
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(20 * time.Second), gomail.WithTLSPolicy(gomail.TLSOpportunistic)}
	if u.Scheme == "smtps" {
		opts = append(opts, gomail.WithSSL())
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	if s.client, err = gomail.NewClient(u.Hostname(), opts...); err != nil {
		return nil, fmt.Errorf("--smtp: %w", err)
	}
	s.smtp = u.Host
	return s, nil
}

// UsesSMTP reports whether mails go to an SMTP server (else the outbox).
func (s *Sender) UsesSMTP() bool { return s.client != nil }

func (s *Sender) build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("to %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// Send sends m (SMTP) or writes it to the outbox.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := s.build(m)
	if err != nil {
		return err
	}
	if s.client != nil {
		if err := s.client.DialAndSendWithContext(ctx, msg); err != nil {
			return fmt.Errorf("smtp %s: %w", s.smtp, err)
		}
		return nil
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("render mail: %w", err)
	}
	name := fmt.Sprintf("%d-%03d-%s.eml", time.Now().UnixMilli(), s.seq.Add(1)%1000, safeName(m.Tag))
	tmp := filepath.Join(s.outbox, "."+name)
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.outbox, name)) // listed only when complete
}

var unsafeRE = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func safeName(s string) string {
	s = unsafeRE.ReplaceAllString(s, "_")
	if len(s) > 60 {
		s = s[:60]
	}
	if s == "" {
		s = "mail"
	}
	return s
}

// Entry is an outbox mail as the orders desk lists it.
type Entry struct {
	Name    string    `json:"name"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
	Size    int64     `json:"size"`
}

// Outbox lists the outbox, newest first (at most limit).
func (s *Sender) Outbox(limit int) ([]Entry, error) {
	des, err := os.ReadDir(s.outbox)
	if errors.Is(err, os.ErrNotExist) {
		return []Entry{}, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range des {
		if n := d.Name(); strings.HasSuffix(n, ".eml") && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	out := []Entry{}
	for _, n := range names {
		if len(out) >= limit {
			break
		}
		f, err := os.Open(filepath.Join(s.outbox, n))
		if err != nil {
			continue
		}
		msg, err := mail.ReadMessage(f)
		st, _ := f.Stat()
		if err == nil {
			dec := new(mime.WordDecoder)
			subj, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
			at, _ := msg.Header.Date()
			out = append(out, Entry{Name: n, To: msg.Header.Get("To"), Subject: subj, At: at, Size: st.Size()})
		}
		_ = f.Close()
	}
	return out, nil
}

// Read returns one outbox mail (the raw .eml).
func (s *Sender) Read(name string) ([]byte, error) {
	if name != filepath.Base(name) || !strings.HasSuffix(name, ".eml") || strings.HasPrefix(name, ".") {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(filepath.Join(s.outbox, name))
}
