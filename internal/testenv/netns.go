package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Link is a network namespace joined to the host by a veth pair: the host
// end has HostIP, the end inside the namespace NSIP (a /30 of
// 10.213.0.0/16 of its own). Shape limits what the host sends into the
// namespace, so a server listening on HostIP reaches a client run inside
// the namespace (Command, Do) through a bottleneck, as a viewer behind a
// slow access link; the client's own sends are not limited.
type Link struct {
	t       testing.TB
	ip, tc  string // paths of iproute2's tools
	ns      string
	hostDev string
	hostIP  string
	nsIP    string
}

// NewShapedLink creates a namespace and its veth pair, both up (and lo in
// the namespace), unshaped; test cleanup deletes them. Without root or
// iproute2 the test skips, or fails under CI=true.
func NewShapedLink(t testing.TB) *Link {
	t.Helper()
	const install = "apt-get install -y iproute2"
	if os.Geteuid() != 0 {
		Missing(t, "root (network namespaces, veth pairs, tc)", "run the tests as root with iproute2: "+install)
	}
	l := &Link{t: t, ip: LookPath(t, "ip", install), tc: LookPath(t, "tc", install)}
	for attempt := 0; ; attempt++ {
		id := rand.Uint32() & 0xffffff
		if attempt == 8 {
			t.Fatalf("no free namespace name or 10.213.0.0/16 subnet after %d tries", attempt)
		}
		// The /30 comes from the same random id as the names: 14 bits of
		// it pick one of the 16384 subnets of 10.213.0.0/16.
		sub := id & 0x3fff
		base := net.IPv4(10, 213, byte(sub>>6), byte(sub&0x3f)*4)
		if subnetInUse(base) {
			continue
		}
		l.ns = fmt.Sprintf("streamd-%06x", id)
		out, err := exec.Command(l.ip, "netns", "add", l.ns).CombinedOutput()
		if err != nil && strings.Contains(string(out), "File exists") {
			continue
		}
		if err != nil {
			if strings.Contains(string(out), "not permitted") {
				Missing(t, "network namespaces (CAP_SYS_ADMIN, CAP_NET_ADMIN)", fmt.Sprintf("ip netns add: %s", out))
			}
			t.Fatalf("ip netns add %s: %v: %s", l.ns, err, out)
		}
		l.hostDev = fmt.Sprintf("sd%06xh", id)
		l.hostIP = net.IPv4(base[12], base[13], base[14], base[15]+1).String()
		l.nsIP = net.IPv4(base[12], base[13], base[14], base[15]+2).String()
		break
	}
	t.Cleanup(func() {
		// Deleting the namespace destroys its veth end, and with it the
		// pair and the qdisc; the explicit delete covers a failed move.
		_ = exec.Command(l.ip, "netns", "del", l.ns).Run()
		_ = exec.Command(l.ip, "link", "del", l.hostDev).Run()
	})
	nsDev := strings.TrimSuffix(l.hostDev, "h") + "n"
	l.run(l.ip, "link", "add", l.hostDev, "type", "veth", "peer", "name", nsDev)
	l.run(l.ip, "link", "set", nsDev, "netns", l.ns)
	l.run(l.ip, "addr", "add", l.hostIP+"/30", "dev", l.hostDev)
	l.run(l.ip, "link", "set", l.hostDev, "up")
	l.run(l.ip, "-n", l.ns, "addr", "add", l.nsIP+"/30", "dev", nsDev)
	l.run(l.ip, "-n", l.ns, "link", "set", nsDev, "up")
	l.run(l.ip, "-n", l.ns, "link", "set", "lo", "up")
	return l
}

// subnetInUse reports whether an address of the host is in base's /30
// (another Link's, of this or another test process).
func subnetInUse(base net.IP) bool {
	_, sub, _ := net.ParseCIDR(base.String() + "/30")
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && sub.Contains(ipn.IP) {
			return true
		}
	}
	return false
}

func (l *Link) run(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// HostIP is the host end's address (where a server listens for clients
// in the namespace).
func (l *Link) HostIP() string { return l.hostIP }

// NSIP is the address of the namespace's end.
func (l *Link) NSIP() string { return l.nsIP }

// Namespace is the namespace's name (ip netns).
func (l *Link) Namespace() string { return l.ns }

// Shape limits the host→namespace direction to rate (tc's syntax:
// "700kbit", "2mbit") with a token bucket filter on the host's veth end:
//
//   - burst (the bucket) is two full-size Ethernet frames, or 10 ms at the
//     rate when that is more: the link sends like a serial line of that
//     rate, never a line-rate burst of more than two packets, and the
//     bucket still refills between ticks of a kernel with HZ=100;
//   - latency 100 ms bounds the queue: what would wait longer is dropped.
//     That is a modest home-router or cellular buffer: overload shows as
//     delay growing to 100 ms, then loss, and NACKs, keyframe requests and
//     congestion feedback still arrive within a few hundred ms.
//
// Shape replaces the previous shaping.
func (l *Link) Shape(rate string) { l.ShapeBuffer(rate, 100*time.Millisecond) }

// ShapeBuffer is Shape with another queue bound: a cellular link's buffer
// often holds several hundred ms (one keyframe of even a small picture
// overflows 100 ms at 700 kbit/s: 8.75 kB).
func (l *Link) ShapeBuffer(rate string, latency time.Duration) {
	l.t.Helper()
	bps, err := ParseRate(rate)
	if err != nil {
		l.t.Fatalf("shape %s: %v", l.hostDev, err)
	}
	burst := max(2*1514, bps/8/100)
	l.run(l.tc, "qdisc", "replace", "dev", l.hostDev, "root", "tbf", "rate", rate,
		"burst", strconv.FormatInt(burst, 10), "latency", strconv.FormatInt(latency.Milliseconds(), 10)+"ms")
}

// RouteMTU gives the namespace's route to HostIP a path MTU of mtu
// (locked: path MTU discovery does not raise it), as a tunnel or VPN
// would: datagrams larger than it leave the namespace fragmented.
func (l *Link) RouteMTU(mtu int) {
	l.t.Helper()
	nsDev := strings.TrimSuffix(l.hostDev, "h") + "n"
	l.run(l.ip, "-n", l.ns, "route", "replace", l.hostIP+"/32", "dev", nsDev, "mtu", "lock", strconv.Itoa(mtu))
}

// Unshape removes the shaping.
func (l *Link) Unshape() {
	l.t.Helper()
	l.run(l.tc, "qdisc", "del", "dev", l.hostDev, "root")
}

// Command is a command to run inside the namespace (ip netns exec execs
// it in place: the process's PID is the command's).
func (l *Link) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, l.ip, append([]string{"netns", "exec", l.ns, name}, args...)...)
}

// Do runs f on an OS thread inside the namespace: the sockets f opens
// belong to the namespace, and stay there when goroutines f starts use
// them. The thread is never used again (its goroutine ends locked).
func (l *Link) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the runtime retires the thread
		fd, err := unix.Open("/run/netns/"+l.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", l.ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", l.ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// ParseRate reads a rate in tc's units (bit, kbit, mbit, gbit; bps, kbps,
// mbps, gbps are bytes per second) as bits per second.
func ParseRate(rate string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"bit", 1}, {"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {"bps", 8}}
	s := strings.ToLower(strings.TrimSpace(rate))
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v <= 0 {
				break
			}
			return int64(v * u.mult), nil
		}
	}
	return 0, fmt.Errorf("bad rate %q (want e.g. 700kbit, 2mbit)", rate)
}
