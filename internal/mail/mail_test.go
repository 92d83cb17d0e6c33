package mail

import (
	"context"
	"net/mail"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/mail/mailtest"
)

func TestSMTP(t *testing.T) {
	ts := mailtest.Start(t)
	s, err := New(ts.URL(), "Shop <shop@example.com>", "")
	if err != nil {
		t.Fatal(err)
	}
	m := Message{To: "ana@example.com", Subject: "Order 1A2B3C4D confirmed", Text: "Thank you, Ana — 2 × Tote", HTML: "<p>Thank you, Ana</p>", Tag: "confirmation-1A2B3C4D"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := ts.Mails()
	if len(got) != 1 || got[0].From != "shop@example.com" || strings.Join(got[0].To, ",") != "ana@example.com" || got[0].User != "shop" {
		t.Fatalf("received %+v", got)
	}
	msg, err := mail.ReadMessage(strings.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Subject") != m.Subject || !strings.Contains(msg.Header.Get("Content-Type"), "multipart/alternative") {
		t.Fatalf("headers %v", msg.Header)
	}
	if !strings.Contains(got[0].Data, "text/html") || !strings.Contains(got[0].Data, "text/plain") {
		t.Fatalf("parts: %s", got[0].Data)
	}
	// Wrong password: the error names the server.
	bad, _ := New("smtp://shop:nope@"+ts.Addr, "", "")
	if err := bad.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), ts.Addr) {
		t.Fatalf("bad credentials: %v", err)
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	s, err := New("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, subj := range []string{"Order A confirmed", "Order A shipped"} {
		if err := s.Send(context.Background(), Message{To: "ana@example.com", Subject: subj, Text: "t", HTML: "<b>h</b>", Tag: "x/../" + subj}); err != nil {
			t.Fatal(i, err)
		}
	}
	es, err := s.Outbox(10)
	if err != nil || len(es) != 2 || es[0].Subject != "Order A shipped" || es[0].To != "<ana@example.com>" {
		t.Fatalf("outbox %+v %v", es, err)
	}
	raw, err := s.Read(es[0].Name)
	if err != nil || !strings.Contains(string(raw), "text/html") {
		t.Fatalf("read: %v", err)
	}
	if _, err := s.Read("../" + es[0].Name); err == nil {
		t.Fatal("read outside the outbox")
	}
	if _, err := New("http://x", "", dir); err == nil {
		t.Fatal("bad --smtp accepted")
	}
}
