// Package mailtest runs a real SMTP server (emersion/go-smtp) on loopback
// for tests: it requires PLAIN auth and keeps every mail it accepts.
package mailtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// User and Pass are the credentials the server accepts.
const (
	User = "shop"
	Pass = "s3cret"
)

// Received is one accepted mail.
type Received struct {
	From, User string
	To         []string
	Data       string // the raw message
}

// Server is a running test SMTP server.
type Server struct {
	Addr string
	mu   sync.Mutex
	got  []Received
}

// URL is the --smtp URL of the server.
func (s *Server) URL() string { return "smtp://" + User + ":" + Pass + "@" + s.Addr }

// Mails returns what the server received so far.
func (s *Server) Mails() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.got...)
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ts := &Server{}
	srv := smtp.NewServer(backend{ts})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback, no certificate
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ts
}

type backend struct{ ts *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{ts: b.ts}, nil }

type session struct {
	ts  *Server
	cur Received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != User || pass != Pass {
			return errors.New("bad credentials")
		}
		s.cur.User = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.cur.User == "" {
		return smtp.ErrAuthRequired
	}
	s.cur.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(b)
	s.ts.mu.Lock()
	s.ts.got = append(s.ts.got, s.cur)
	s.ts.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = Received{User: s.cur.User} }
func (s *session) Logout() error { return nil }
