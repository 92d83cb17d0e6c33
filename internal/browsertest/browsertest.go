// Package browsertest runs headless Chromium (through chromedp) for tests
// and the bench: fake camera, loopback WebRTC, no background throttling.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamd/streamd/internal/testenv"
)

// Browser is one Chromium process; each Tab is a page in it.
type Browser struct {
	ctx    context.Context
	cancel func()
}

// Launch starts Chromium for the test and stops it at cleanup; extra
// options (e.g. chromedp.Flag("host-resolver-rules", ...)) are added.
func Launch(t testing.TB, extra ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	exe := testenv.Chromium(t)
	b, err := Start(exe, t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Start launches Chromium at exe with a fresh profile under dir.
func Start(exe, dir string, extra ...chromedp.ExecAllocatorOption) (*Browser, error) {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("mute-audio", true),
	}
	opts = append(opts, extra...)
	if os.Getenv("STREAMD_CHROMIUM_LOG") != "" {
		opts = append(opts, chromedp.CombinedOutput(os.Stderr))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Start the browser now so launch errors surface here.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		return nil, fmt.Errorf("launch %s: %w", exe, err)
	}
	return &Browser{ctx: ctx, cancel: func() { cancel(); acancel() }}, nil
}

// Close stops Chromium.
func (b *Browser) Close() { b.cancel() }

// Tab opens a new page (a new target in the same browser).
func (b *Browser) Tab(t testing.TB) context.Context {
	ctx, cancel := b.NewTab()
	t.Cleanup(cancel)
	return ctx
}

// Visitor opens a page in a browser context of its own: cookies and
// storage apart from every other tab, like another person's browser.
func (b *Browser) Visitor(t testing.TB) context.Context {
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	t.Cleanup(cancel)
	return ctx
}

// NewTab opens a page without a test (bench); call the cancel func to close it.
// The tab is created here, on the undecorated context: the first Run on a
// chromedp context creates its target, and cancelling the context that did
// so closes it — a Run under a timeout would close the tab when it returns.
func (b *Browser) NewTab() (context.Context, context.CancelFunc) {
	ctx, cancel := chromedp.NewContext(b.ctx)
	_ = chromedp.Do(ctx)
	return ctx, cancel
}

// Eval runs js in the page (awaiting a promise) and decodes its JSON result.
func Eval[T any](ctx context.Context, timeout time.Duration, js string) (T, error) {
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return chromedp.Run(c, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// Open navigates a tab to url and waits until sel is present.
func Open(ctx context.Context, url, sel string) error {
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return chromedp.Do(c, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(sel)))
}

// WaitFor polls js until it returns true.
func WaitFor(ctx context.Context, timeout time.Duration, js string) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := Eval[bool](ctx, 5*time.Second, js)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s (last error: %v)", js, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
