package app

import (
	"net"
	"net/http"
	"strings"
)

// PublicBase is the URL phones and browsers use to reach this server, for
// printed URLs, QR codes and OBS instructions: --public-url when given;
// else the ACME domain; else this host's LAN address (a phone on the same
// Wi-Fi can open it — "localhost" would name the phone itself).
func (a *App) PublicBase() string {
	if a.Config.PublicURL != "" {
		return a.Config.PublicURL
	}
	scheme := "http"
	if a.tlsConfig != nil {
		scheme = "https"
	}
	port := portOf(a.Config.HTTP)
	if a.httpLn != nil {
		port = portOf(a.httpLn.Addr().String())
	}
	host := a.Config.ACMEDomain
	if host == "" {
		host = a.lanHost()
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") || port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// lanHost is the host part of the listen address when it names one, else
// the first private IPv4 address of an interface that is up.
func (a *App) lanHost() string {
	if h, _, err := net.SplitHostPort(a.Config.HTTP); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		return h
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "localhost"
	}
	var addrs []net.IP
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, _ := ifc.Addrs()
		for _, ad := range as {
			if n, ok := ad.(*net.IPNet); ok {
				addrs = append(addrs, n.IP)
			}
		}
	}
	return pickLANHost(addrs)
}

// pickLANHost prefers a private IPv4 address (a shop's Wi-Fi), then any
// other global IPv4 address, else "localhost".
func pickLANHost(ips []net.IP) string {
	var other string
	for _, ip := range ips {
		v4 := ip.To4()
		if v4 == nil || v4.IsLoopback() || v4.IsLinkLocalUnicast() {
			continue
		}
		if v4.IsPrivate() {
			return v4.String()
		}
		if other == "" {
			other = v4.String()
		}
	}
	if other != "" {
		return other
	}
	return "localhost"
}

func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return ""
}

// redirectHTTPS sends plain-HTTP visitors to the HTTPS site (what the
// ACME listener does with requests that are not challenges).
func (a *App) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	base := a.PublicBase()
	if !strings.HasPrefix(base, "https://") {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		base = "https://" + net.JoinHostPort(host, portOf(a.HTTPAddr()))
	}
	http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusFound)
}
