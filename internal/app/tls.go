package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Browsers give the camera (the publish page) and Stripe's Payment Element
// only to secure pages, so a shop reached from phones needs HTTPS: from
// certificate files, or from an ACME CA (Let's Encrypt) with autocert.

// initTLS builds the TLS configuration of the HTTP server (nil: plain HTTP).
func (a *App) initTLS() error {
	c := a.Config
	switch {
	case c.ACMEDomain != "" && (c.TLSCert != "" || c.TLSKey != ""):
		return errors.New("--acme-domain and --tls-cert/--tls-key exclude each other: pick one")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.TLSCert != "":
		// Loaded now so that a bad file fails the start, not the first visitor.
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		a.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case c.ACMEDomain != "":
		dir := c.ACMEDirectory
		if dir == "" {
			dir = autocert.DefaultACMEDirectory
		}
		a.acme = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(filepath.Join(c.Data, "acme")),
			HostPolicy: autocert.HostWhitelist(c.ACMEDomain),
			Email:      c.ACMEEmail,
			Client:     &acme.Client{DirectoryURL: dir, HTTPClient: c.ACMEHTTPClient},
		}
		a.tlsConfig = a.acme.TLSConfig()
		a.tlsConfig.MinVersion = tls.VersionTLS12
	}
	return nil
}

// startACMEHTTP serves the HTTP-01 challenge on --acme-http (default :80)
// and redirects every other plain-HTTP request to HTTPS.
func (a *App) startACMEHTTP() error {
	if a.acme == nil {
		return nil
	}
	addr := a.Config.ACMEHTTP
	if addr == "" {
		addr = ":80"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s for ACME HTTP-01 challenges (--acme-http): %w", addr, err)
	}
	a.acmeLn = ln
	h := a.acme.HTTPHandler(http.HandlerFunc(a.redirectHTTPS))
	// autocert checks the Host header against the domain as it is: on a
	// port other than 80 it carries ":port", which would fail the check.
	strip := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: strip, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(ln) }()
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return nil
}

// ACMEHTTPAddr is the bound address of the HTTP-01 listener ("" without ACME).
func (a *App) ACMEHTTPAddr() string {
	if a.acmeLn == nil {
		return ""
	}
	return a.acmeLn.Addr().String()
}
