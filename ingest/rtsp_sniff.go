// Early rejection of connections that are not speaking RTSP, so they do
// not hold a slot until the read timeout.

package ingest

import (
	"errors"
	"net"
	"time"
)

// sniffListener checks the first request line of each connection: bytes
// that cannot start an RTSP request (a port scanner, TLS, binary garbage)
// get "400 Bad Request" and the connection is closed at once, instead of
// waiting for the read timeout.
type sniffListener struct {
	net.Listener
	s *RTSPServer
}

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, s: l.s}, nil
}

var errNotRTSP = errors.New("not an RTSP request")

type sniffConn struct {
	net.Conn
	s       *RTSPServer
	checked bool
	n       int
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.checked || n == 0 {
		return n, err
	}
	for _, ch := range b[:n] {
		if ch == '\n' {
			c.checked = true
			break
		}
		c.n++
		bad := (c.n == 1 && (ch < 'A' || ch > 'Z')) || (ch < 0x20 && ch != '\r') || ch >= 0x7f || c.n > 4096
		if bad {
			c.s.m.rejected.WithLabelValues("not_rtsp").Inc()
			c.s.Logger.Info("rtsp: not an RTSP request; closing", "remote", c.RemoteAddr().String())
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write([]byte("RTSP/1.0 400 Bad Request - not an RTSP request\r\n\r\n"))
			_ = c.Conn.Close()
			return 0, errNotRTSP
		}
	}
	return n, err
}
