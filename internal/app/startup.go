package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// StartupError is a failure to start, phrased for the person starting
// streamd: what failed, where, and what to do. cmd/streamd prints it as one
// line and exits non-zero.
type StartupError struct {
	What string // what failed, naming the address, URL or directory
	Fix  string // what to do about it
	Err  error  // the cause
}

func (e *StartupError) Error() string {
	return fmt.Sprintf("%s: %s (%v)", e.What, e.Fix, e.Err)
}

func (e *StartupError) Unwrap() error { return e.Err }

// listenFailure explains a failed listen on addr, the address of flag
// (e.g. "--http"), for a service (e.g. "HTTP").
func listenFailure(service, flag, addr string, err error) error {
	var se *StartupError
	if errors.As(err, &se) {
		return err
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return &StartupError{What: fmt.Sprintf("%s address %s (%s) is already in use", service, addr, flag),
			Fix: fmt.Sprintf("stop the program using it (another streamd?) or choose another address with %s", flag), Err: err}
	case errors.Is(err, syscall.EACCES):
		return &StartupError{What: fmt.Sprintf("%s address %s (%s) is not allowed", service, addr, flag),
			Fix: fmt.Sprintf("ports below 1024 need privileges: choose a port above 1024 with %s", flag), Err: err}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return &StartupError{What: fmt.Sprintf("%s address %s (%s) is not an address of this machine", service, addr, flag),
			Fix: fmt.Sprintf("use one of this machine's addresses, or none (%s :PORT) for all", flag), Err: err}
	}
	return &StartupError{What: fmt.Sprintf("cannot listen for %s on %s (%s)", service, addr, flag), Fix: "check " + flag, Err: err}
}

// rtspFailure explains a failed start of the RTSP server on rtspAddr: its
// TCP port P, or one of its UDP ports (RTP on P, or P+1 when P is odd, and
// RTCP on the next port).
func rtspFailure(rtspAddr string, err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Net != "udp" || op.Addr == nil {
		return listenFailure("RTSP", "--rtsp", rtspAddr, err)
	}
	_, ps, _ := net.SplitHostPort(op.Addr.String())
	port, _ := strconv.Atoi(ps)
	role := "RTP"
	if port%2 == 1 {
		role = "RTCP"
	}
	service := fmt.Sprintf("RTSP's UDP %s port %d (RTSP over UDP uses the pair %d/%d next to --rtsp %s)", role, port, port&^1, port&^1+1, rtspAddr)
	if !errors.Is(err, syscall.EADDRINUSE) {
		return listenFailure(service, "--rtsp", op.Addr.String(), err)
	}
	return &StartupError{What: service + " is already in use",
		Fix: "stop the program using it, or move RTSP with --rtsp (both the port and its UDP pair must be free)", Err: err}
}

// redisFailure explains a --redis URL that cannot be used.
func redisFailure(rawURL string, parse bool, err error) error {
	shown := rawURL
	if u, perr := url.Parse(rawURL); perr == nil {
		shown = u.Redacted() // never print a password
	}
	if parse {
		return &StartupError{What: fmt.Sprintf("--redis %q is not a Redis URL", shown),
			Fix: "write it as redis://[user:password@]host:port/db (rediss:// for TLS)", Err: err}
	}
	return &StartupError{What: "cannot reach Redis at " + shown + " (--redis)",
		Fix: "start Redis there, or fix --redis (without --redis streamd keeps everything in its data directory)", Err: err}
}

// storeFailure explains a data directory that cannot be opened.
func storeFailure(dir string, err error) error {
	if errors.Is(err, bolt.ErrTimeout) {
		return &StartupError{What: "data directory " + dir + " (--data) is in use by another streamd (its store is locked)",
			Fix: "stop the other streamd, or give this one its own directory with --data", Err: err}
	}
	return &StartupError{What: "cannot open the store in " + dir + " (--data)",
		Fix: "check that the directory is writable by this user, or choose another with --data", Err: err}
}
