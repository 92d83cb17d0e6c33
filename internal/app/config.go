package app

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Config is everything cmd/streamd reads from flags and STREAMD_* variables.
type Config struct {
	HTTP                string
	RTSP                string
	WebRTCUDP           string
	WebRTCIPs           []string
	WebRTCTCP           string // ICE over TCP address ("" disables)
	WebRTCNoGSO         bool   // no UDP segmentation offload for fan-out sends
	TURN                string // embedded TURN server address ("" disables)
	TURNTLS             string // TURN over TLS address, used with TLSCert/TLSKey
	Data                string
	StaffToken          string
	Redis               string
	StripeKey           string
	StripeWebhookSecret string
	StripeAPI           string
	StripePublishable   string
	NodeURL             string
	Demo                bool
	HoldTTL             time.Duration
	PProf               bool
	SMTP                string
	MailFrom            string
	LoopbackOnly        bool // tests: keep ICE on loopback
	// Recording: every show is recorded under RecordDir (default <data>/shows)
	// and kept RecordKeep after it ends (0: forever).
	Record     bool
	RecordDir  string
	RecordKeep time.Duration
	// RecordShowGap overrides how long a stream may be off the air and still
	// continue its show (tests); 0 is the recorder's default.
	RecordShowGap time.Duration
	// PublicURL is how phones and browsers reach this server (printed URLs,
	// QR codes, OBS instructions); empty: the host's LAN address.
	PublicURL string
	// TLS from files, or from an ACME CA for ACMEDomain (HTTP-01 challenges
	// on ACMEHTTP, default :80; certificates cached in <data>/acme).
	TLSCert, TLSKey string
	ACMEDomain      string
	ACMEEmail       string
	ACMEHTTP        string
	ACMEDirectory   string
	// ACMEHTTPClient talks to the ACME CA (tests: one trusting pebble).
	ACMEHTTPClient *http.Client
	// Slow clients (0: the defaults in limits.go). ReadTimeout bounds a
	// request's headers and body (longer bodies get more at 16 KB/s),
	// WriteTimeout its response, IdleTimeout a keep-alive connection
	// between requests; WebSockets are exempt.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// MaxConnsPerIP caps the HTTP connections open at once from one client
	// IP (0: 1024; negative: no cap).
	MaxConnsPerIP int
}

// ParseFlags reads args, with each flag falling back to STREAMD_<NAME>
// (dashes as underscores) when not given on the command line.
func ParseFlags(args []string) (Config, error) {
	var c Config
	var ips string
	fs := flag.NewFlagSet("streamd", flag.ContinueOnError)
	fs.StringVar(&c.HTTP, "http", ":8080", "HTTP listen address (API, WHIP, WHEP, pages, /metrics)")
	fs.StringVar(&c.RTSP, "rtsp", ":8554", "RTSP listen address (empty disables RTSP)")
	fs.StringVar(&c.WebRTCUDP, "webrtc-udp", ":8189", "the one UDP address all WebRTC peers share")
	fs.StringVar(&c.WebRTCTCP, "webrtc-tcp", ":8189", "ICE over TCP address, for viewers whose network blocks UDP (empty disables)")
	gso := fs.Bool("webrtc-gso", true, "send each viewer's equal-size packets of one frame as one UDP segmentation-offload train where the kernel supports it (less CPU per viewer; false: datagram by datagram)")
	fs.StringVar(&c.TURN, "turn", "", "embedded TURN server address on UDP and TCP, e.g. :3478 (empty: off)")
	fs.StringVar(&c.TURNTLS, "turn-tls", ":5349", "TURN over TLS (turns:) address, used when --tls-cert and --tls-key are set")
	fs.StringVar(&ips, "webrtc-ip", "", "addresses to advertise in ICE candidates, comma-separated (empty: the host's)")
	fs.StringVar(&c.Data, "data", "./data", "data directory (embedded store, generated staff token)")
	fs.StringVar(&c.StaffToken, "staff-token", "", "staff token (generated and kept in the data dir when empty)")
	fs.StringVar(&c.Redis, "redis", "", "Redis URL for a cluster (empty: embedded store and in-process bus)")
	fs.StringVar(&c.StripeKey, "stripe-key", "", "Stripe secret key (empty: the dev payment provider, test mode)")
	fs.StringVar(&c.StripeWebhookSecret, "stripe-webhook-secret", "", "Stripe webhook signing secret")
	fs.StringVar(&c.StripeAPI, "stripe-api", "", "Stripe API base URL override (stripe-mock)")
	fs.StringVar(&c.StripePublishable, "stripe-publishable-key", "", "Stripe publishable key (pk_...) for the player's Payment Element")
	fs.StringVar(&c.NodeURL, "node-url", "", "this node's URL for other nodes of a cluster")
	fs.BoolVar(&c.Demo, "demo", false, "create the demo stream and catalog on first start")
	fs.DurationVar(&c.HoldTTL, "hold-ttl", 10*time.Minute, "how long a cart hold keeps stock")
	fs.StringVar(&c.SMTP, "smtp", "", "SMTP server for receipts, smtp://user:pass@host:587 (empty: mails go to <data>/outbox)")
	fs.StringVar(&c.MailFrom, "mail-from", "", "From address of receipts (e.g. \"Shop <orders@shop.example>\")")
	fs.BoolVar(&c.Record, "record", true, "record every show (fMP4) for replay")
	fs.StringVar(&c.RecordDir, "record-dir", "", "where recorded shows are kept (empty: <data>/shows)")
	keep := keepFlag{d: 30 * 24 * time.Hour}
	fs.Var(&keep, "record-keep", "how long a show is kept after it ends, e.g. 30d, 12h (0: forever)")
	fs.StringVar(&c.PublicURL, "public-url", "", "the URL phones and browsers use to reach this server, e.g. https://shop.example.com (printed URLs, QR codes, OBS instructions; empty: the host's LAN address)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS (and TURN over TLS) with this certificate file (PEM, with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the private key file of --tls-cert (PEM)")
	fs.StringVar(&c.ACMEDomain, "acme-domain", "", "get a certificate for this domain from Let's Encrypt (HTTP-01 on --acme-http; cache in the data dir)")
	fs.StringVar(&c.ACMEEmail, "acme-email", "", "contact e-mail for the ACME account (optional)")
	fs.StringVar(&c.ACMEHTTP, "acme-http", ":80", "where ACME HTTP-01 challenges are answered; other plain-HTTP requests are redirected to HTTPS")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", "", "ACME directory URL (empty: Let's Encrypt production)")
	fs.BoolVar(&c.PProf, "pprof", false, "serve /debug/pprof on the HTTP port (needs the staff token)")
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", defaultReadTimeout, "time to send a request's headers and body (larger bodies get more, at 16 KB/s); WebSockets exempt")
	fs.DurationVar(&c.WriteTimeout, "http-write-timeout", defaultWriteTimeout, "time to take a response; WebSockets exempt")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", defaultIdleTimeout, "an idle keep-alive connection is closed after this")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", defaultMaxConnsPerIP, "HTTP connections open at once per client IP (-1: no cap; raise it behind a reverse proxy or a large shared NAT)")
	set := map[string]bool{}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := "STREAMD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s: %w", env, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	c.RecordKeep = keep.d
	c.WebRTCNoGSO = !*gso
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "https://") && !strings.HasPrefix(c.PublicURL, "http://") {
		return c, fmt.Errorf("--public-url %q: give the scheme, e.g. https://shop.example.com", c.PublicURL)
	}
	for _, ip := range strings.Split(ips, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			c.WebRTCIPs = append(c.WebRTCIPs, ip)
		}
	}
	return c, nil
}

// keepFlag is a duration that also takes days ("30d").
type keepFlag struct{ d time.Duration }

func (k *keepFlag) String() string {
	if k.d%(24*time.Hour) == 0 && k.d > 0 {
		return fmt.Sprintf("%dd", k.d/(24*time.Hour))
	}
	return k.d.String()
}

func (k *keepFlag) Set(v string) error {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days < 0 {
			return fmt.Errorf("bad number of days %q", v)
		}
		k.d = time.Duration(days) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	k.d = d
	return nil
}
