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

	"github.com/streamd/streamd/internal/app"
)

func main() {
	cfg, err := app.ParseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(cfg, logger); err != nil {
		logger.Error("streamd stopped", "err", err)
		os.Exit(1)
	}
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
