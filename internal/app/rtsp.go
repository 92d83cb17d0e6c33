package app

import "github.com/streamd/streamd/streams"

// initRTSP wires RTSP ingest (publish, pull, read). RTSP is not built yet:
// --rtsp is accepted and ignored until it is.
func (a *App) initRTSP() error { return nil }

// rtspStatus adds RTSP source state and warnings to a stream's status.
func (a *App) rtspStatus(id string, st *streams.Status) {}
