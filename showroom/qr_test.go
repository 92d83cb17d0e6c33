package showroom

import (
	"net/http/httptest"
	"testing"
)

// TestVisitURL: the QR code names --public-url when set; a console opened
// on localhost gets the LAN address instead (localhost on a visitor's phone
// is the phone); otherwise the host the staff reached.
func TestVisitURL(t *testing.T) {
	lan := func() string { return "http://192.168.1.23:8080" }
	cases := []struct {
		s    *Server
		host string
		want string
	}{
		{&Server{PublicURL: "https://shop.example.com", LANURL: lan}, "localhost:8080", "https://shop.example.com/visit/demo"},
		{&Server{LANURL: lan}, "localhost:8080", "http://192.168.1.23:8080/visit/demo"},
		{&Server{LANURL: lan}, "127.0.0.1:8080", "http://192.168.1.23:8080/visit/demo"},
		{&Server{LANURL: lan}, "shop.lan:8080", "http://shop.lan:8080/visit/demo"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/visit/demo/qr.png", nil)
		r.Host = c.host
		if got := c.s.visitURL(r, "demo"); got != c.want {
			t.Errorf("host %s: %s, want %s", c.host, got, c.want)
		}
	}
}
