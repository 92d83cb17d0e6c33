// Command streamd is the live-commerce streaming server: WHIP/RTSP in,
// WebRTC (WHEP) out, product cards over WebSocket, an instant cart.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/app"
)

func main() {
	cfg, err := app.ParseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// go-redis logs every failed dial on its own, process-wide logger; the
	// failure reaches streamd as an error anyway, so those lines are debug.
	redis.SetLogger(redisLog{logger})
	if err := run(cfg, logger); err != nil {
		// One line saying what failed, where, and what to do (app.StartupError).
		fmt.Fprintln(os.Stderr, "streamd: "+err.Error())
		os.Exit(1)
	}
}

type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

func run(cfg app.Config, logger *slog.Logger) error {
	a, err := app.New(cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	if cfg.Demo {
		if err := a.SeedDemo(context.Background(), os.Stdout); err != nil {
			return err
		}
	}
	if err := a.Start(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "streamd listening on %s (%s); phones open %s\nstaff token: %s\n", a.BaseURL(), a.MediaPorts(), a.PublicBase(), a.Config.StaffToken)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-a.Errors():
		return err
	}
	return nil
}
