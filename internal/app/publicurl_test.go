package app

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// TestPublicURL: --public-url is what make run prints (OBS, publish,
// console, watch, QR) and what /api/config hands the pages; without it the
// printed URLs name the host's LAN address, never localhost.
func TestPublicURL(t *testing.T) {
	a := startApp(t, func(c *Config) { c.PublicURL = "https://shop.example.com" })
	var out bytes.Buffer
	if err := a.SeedDemo(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Server:       https://shop.example.com/whip/demo", "https://shop.example.com/publish/demo", "https://shop.example.com/console/demo",
		"https://shop.example.com/watch/demo", "https://shop.example.com/visit/demo/qr.png"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed URLs miss %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "localhost") || strings.Contains(out.String(), "needs HTTPS") {
		t.Errorf("printed:\n%s", out.String())
	}
	var cfg struct {
		PublicURL string `json:"public_url"`
	}
	api(t, "GET", a.BaseURL()+"/api/config", "", nil, &cfg)
	if cfg.PublicURL != "https://shop.example.com" {
		t.Fatalf("/api/config public_url %q", cfg.PublicURL)
	}

	// Without it, a server on all interfaces prints its LAN address.
	b := startApp(t, func(c *Config) { c.HTTP = ":0" })
	if base := b.PublicBase(); strings.Contains(base, "localhost") && pickLANHost(hostIPs(t)) != "localhost" {
		t.Fatalf("PublicBase %q on a host with a LAN address", base)
	}
	for _, c := range []struct {
		ips  []string
		want string
	}{
		{[]string{"127.0.0.1", "fe80::1", "203.0.113.7", "192.168.1.23"}, "192.168.1.23"},
		{[]string{"::1", "203.0.113.7"}, "203.0.113.7"},
		{[]string{"127.0.0.1", "169.254.3.4"}, "localhost"},
	} {
		var ips []net.IP
		for _, s := range c.ips {
			ips = append(ips, net.ParseIP(s))
		}
		if got := pickLANHost(ips); got != c.want {
			t.Errorf("pickLANHost(%v) = %q, want %q", c.ips, got, c.want)
		}
	}
}

func hostIPs(t *testing.T) []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}
