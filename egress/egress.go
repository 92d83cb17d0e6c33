// Package egress is every way media leaves streamd: WHEP viewers (whep.go)
// and RTSP readers (rtsp_read.go); recording and HLS go in subdirectories.
// Each takes its media from the sfu — a viewer's tracks, a tap or a sink —
// and owns only its protocol.
package egress
