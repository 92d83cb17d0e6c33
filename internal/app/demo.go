package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// SeedDemo creates the demo stream (and, once the cart is wired, the demo
// catalog) on first start and prints what to paste into OBS.
func (a *App) SeedDemo(ctx context.Context, out io.Writer) error {
	rec, created, err := a.Streams.EnsureDemo(ctx, "demo", "Demo showroom")
	if err != nil {
		return fmt.Errorf("demo stream: %w", err)
	}
	base := a.PublicBase()
	if created {
		fmt.Fprintln(out, "created the demo stream")
	}
	if err := a.Cart.SeedDemo(ctx); err != nil {
		return fmt.Errorf("demo catalog: %w", err)
	}
	fmt.Fprintf(out, "\nOBS → Settings → Stream → Service: WHIP\n  Server:       %s/whip/%s\n  Bearer Token: %s\n", base, rec.ID, rec.PublishKey)
	fmt.Fprintf(out, "Go live from a browser: %s/publish/%s\n", base, rec.ID)
	if !strings.HasPrefix(base, "https://") {
		fmt.Fprintln(out, "  (a phone's camera needs HTTPS: --acme-domain, --tls-cert/--tls-key or a proxy, see docs/deploy.md)")
	}
	if a.Config.RTSP != "" {
		port := "8554"
		if _, p, err := net.SplitHostPort(a.Config.RTSP); err == nil {
			port = p
		}
		host := "localhost"
		if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		fmt.Fprintf(out, "Or over RTSP (ffmpeg):  rtsp://pub:%s@%s/%s\n", rec.PublishKey, net.JoinHostPort(host, port), rec.ID)
	}
	fmt.Fprint(out, a.turnHint())
	fmt.Fprintf(out, "Watch:                  %s/watch/%s\nRun the show (tablet):  %s/console/%s  (sign in with the staff token)\nShowroom visitors:      %s/visit/%s  (QR code: %s/visit/%s/qr.png)\n\n",
		base, rec.ID, base, rec.ID, base, rec.ID, base, rec.ID)
	return nil
}
