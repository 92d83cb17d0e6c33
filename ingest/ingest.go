// Package ingest turns publishers into sfu sources: WHIP (RFC 9725) sessions
// from OBS and browsers (whip.go), RTSP publishers, readers and camera pulls
// (rtsp*.go), and pulls of streams published on another node of a cluster
// (relay.go).
package ingest

import (
	"context"
	"errors"
)

// Auth checks a publish key for a stream (declared here, implemented by the
// streams registry, wired in internal/app). It returns ErrUnknownStream or
// ErrBadKey, or nil when the key may publish.
type Auth interface {
	CheckPublish(ctx context.Context, stream, key string) error
}

var (
	// ErrUnknownStream: no such stream.
	ErrUnknownStream = errors.New("unknown stream")
	// ErrBadKey: the publish key is missing or wrong.
	ErrBadKey = errors.New("wrong publish key")
)
