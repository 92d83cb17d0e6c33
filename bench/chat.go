package main

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The chat scenario: M overlay viewers watch while chatters talk and
// viewers react. A chatter sends 1 message/s; the server allows a viewer
// about one message per 2 s (burst 3), so each chatter speaks through two
// viewer identities in turn (two cookies, two sockets), as two people at
// one phone would. Every viewer must get every chat message exactly once
// and every seq in order; the send → received delay is measured at each
// viewer against the send time of the message it names.

const latBucketMS = 0.25 // latency histogram resolution

type chatStats struct {
	sent    []atomic.Int64 // message n → send time (unix ns); 0: not sent
	hist    []atomic.Int64 // latency histogram, latBucketMS per bucket
	maxLat  atomic.Int64   // ns
	dups    atomic.Int64
	recv    atomic.Int64 // chat messages received, all viewers
	react   atomic.Int64 // reactions events received (all viewers)
	seqGaps atomic.Int64
	refused atomic.Int64 // error replies to chatters
}

// chatViewer reads one viewer socket: cheap byte scans, no JSON decoding,
// so that 5,000 of them fit beside the server on a small machine.
type chatViewer struct {
	conn    *websocket.Conn
	got     []uint64 // bitset of message numbers received
	lastSeq int64
	ready   atomic.Bool
	closed  atomic.Bool
}

var (
	keyType = []byte(`{"type":"`)
	keySeq  = []byte(`"seq":`)
	keyText = []byte(`"text":"m`)
)

func scanUint(b []byte) (uint64, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, i > 0
}

func (v *chatViewer) read(st *chatStats) {
	defer v.closed.Store(true)
	for {
		_, b, err := v.conn.ReadMessage()
		now := time.Now().UnixNano()
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, keyType) {
			continue
		}
		rest := b[len(keyType):]
		typ := rest[:max(0, bytes.IndexByte(rest, '"'))]
		var seq uint64
		if i := bytes.Index(b, keySeq); i >= 0 {
			seq, _ = scanUint(b[i+len(keySeq):])
		}
		switch string(typ) {
		case "snapshot":
			v.lastSeq = int64(seq)
			v.ready.Store(true)
			continue
		case "pong", "error":
			continue
		}
		if v.lastSeq >= 0 && int64(seq) != v.lastSeq+1 && int64(seq) > v.lastSeq {
			st.seqGaps.Add(int64(seq) - v.lastSeq - 1)
		}
		if int64(seq) > v.lastSeq {
			v.lastSeq = int64(seq)
		}
		switch string(typ) {
		case "reactions":
			st.react.Add(1)
		case "chat":
			i := bytes.Index(b, keyText)
			if i < 0 {
				continue
			}
			n, ok := scanUint(b[i+len(keyText):])
			if !ok || int(n) >= len(st.sent) {
				continue
			}
			w, bit := n/64, uint64(1)<<(n%64)
			if v.got[w]&bit != 0 {
				st.dups.Add(1)
				continue
			}
			v.got[w] |= bit
			st.recv.Add(1)
			if t0 := st.sent[n].Load(); t0 > 0 {
				lat := now - t0
				bk := min(int(float64(lat)/1e6/latBucketMS), len(st.hist)-1)
				st.hist[max(bk, 0)].Add(1)
				for m := st.maxLat.Load(); lat > m && !st.maxLat.CompareAndSwap(m, lat); m = st.maxLat.Load() {
				}
			}
		}
	}
}

func histPercentile(h []atomic.Int64, p float64) float64 {
	var total int64
	for i := range h {
		total += h[i].Load()
	}
	if total == 0 {
		return -1
	}
	want := int64(p * float64(total))
	var acc int64
	for i := range h {
		if acc += h[i].Load(); acc > want {
			return float64(i+1) * latBucketMS
		}
	}
	return float64(len(h)) * latBucketMS
}

// chatCookie signs in a chat identity over the public API.
func chatCookie(ctx context.Context, base, name string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/viewer", strings.NewReader(`{"name":"`+name+`"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "streamd_viewer" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("POST /api/viewer: %d, no cookie", res.StatusCode)
}

func runChat(ctx context.Context, e *Env) ([]Row, error) {
	o := e.Opts
	srv, err := e.target(ctx, "chat")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	stream := fmt.Sprintf("bench-chat-%d", time.Now().Unix())
	if _, err := srv.CreateStream(ctx, stream); err != nil {
		return nil, err
	}
	wsURL := "ws" + strings.TrimPrefix(srv.Base, "http") + "/ws/" + stream
	d := &websocket.Dialer{HandshakeTimeout: 20 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
	total := int(o.ChatDuration.Seconds()) * o.Chatters
	st := &chatStats{sent: make([]atomic.Int64, total), hist: make([]atomic.Int64, int(60000/latBucketMS))}
	rssBase, _ := procRSS(srv.PID)

	// Viewers, 64 dials at a time.
	viewers := make([]*chatViewer, o.ChatViewers)
	defer func() {
		for _, v := range viewers {
			if v != nil {
				_ = v.conn.Close()
			}
		}
	}()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var dialErr atomic.Pointer[error] // the first; errors differ in type
	var dialed atomic.Int64
	tc := time.Now()
	for i := range viewers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := d.DialContext(ctx, wsURL, nil)
			if err != nil {
				dialErr.CompareAndSwap(nil, &err)
				return
			}
			v := &chatViewer{conn: c, lastSeq: -1, got: make([]uint64, (total+63)/64)}
			viewers[i] = v
			go v.read(st)
			if n := dialed.Add(1); n%250 == 0 {
				e.Progress.Set("chat: connecting %d/%d viewers", n, o.ChatViewers)
			}
		}()
	}
	wg.Wait()
	if err := dialErr.Load(); err != nil {
		return nil, fmt.Errorf("connect viewers (%d of %d): %w", dialed.Load(), o.ChatViewers, *err)
	}
	connectS := time.Since(tc).Seconds()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n := 0
		for _, v := range viewers {
			if v.ready.Load() {
				n++
			}
		}
		e.Progress.Set("chat: %d/%d snapshots", n, len(viewers))
		if n == len(viewers) {
			break
		}
	}

	// Chatters: two identities each, sending in turn.
	type ident struct {
		conn *websocket.Conn
		mu   sync.Mutex
	}
	idents := make([]*ident, 2*o.Chatters)
	for i := range idents {
		ck, err := chatCookie(ctx, srv.Base, fmt.Sprintf("chatter %d%c", i/2, 'a'+i%2))
		if err != nil {
			return nil, err
		}
		c, _, err := d.DialContext(ctx, wsURL, http.Header{"Cookie": {ck}})
		if err != nil {
			return nil, fmt.Errorf("chatter socket: %w", err)
		}
		defer c.Close()
		idents[i] = &ident{conn: c}
		go func() { // count refusals (errors) to chatters
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					return
				}
				if bytes.HasPrefix(b, []byte(`{"type":"error"`)) {
					st.refused.Add(1)
				}
			}
		}()
	}
	// Reactors: sockets of their own, one reaction per second each.
	reactors := make([]*websocket.Conn, o.ReactRate)
	for i := range reactors {
		c, _, err := d.DialContext(ctx, wsURL, nil)
		if err != nil {
			return nil, fmt.Errorf("reactor socket: %w", err)
		}
		defer c.Close()
		reactors[i] = c
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(time.Second)
	rss, rssOK := procRSS(srv.PID)

	u := startUsage(srv.PID)
	mBefore, _ := scrape(ctx, srv.Base+"/metrics")
	emoji := []string{"❤️", "🔥", "😂", "👏", "😮"}
	var lwg sync.WaitGroup
	start := time.Now()
	// Message n = second*Chatters + chatter, sent at its second plus the
	// chatter's offset in that second (spread evenly).
	for c := 0; c < o.Chatters; c++ {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			off := time.Duration(c) * time.Second / time.Duration(o.Chatters)
			for s := 0; s < int(o.ChatDuration.Seconds()) && ctx.Err() == nil; s++ {
				time.Sleep(time.Until(start.Add(time.Duration(s)*time.Second + off)))
				id := idents[2*c+s%2]
				n := s*o.Chatters + c
				msg := []byte(`{"type":"chat","text":"m` + strconv.Itoa(n) + ` how much is shipping?"}`)
				st.sent[n].Store(time.Now().UnixNano())
				id.mu.Lock()
				err := id.conn.WriteMessage(websocket.TextMessage, msg)
				id.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	for r, c := range reactors {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			off := time.Duration(r) * time.Second / time.Duration(len(reactors))
			for s := 0; s < int(o.ChatDuration.Seconds()) && ctx.Err() == nil; s++ {
				time.Sleep(time.Until(start.Add(time.Duration(s)*time.Second + off)))
				if c.WriteMessage(websocket.TextMessage, []byte(`{"type":"react","emoji":"`+emoji[r%len(emoji)]+`"}`)) != nil {
					return
				}
			}
		}()
	}
	for time.Since(start) < o.ChatDuration && ctx.Err() == nil {
		e.Progress.Set("chat: %d viewers, %ds/%ds", len(viewers), int(time.Since(start).Seconds()), int(o.ChatDuration.Seconds()))
		time.Sleep(500 * time.Millisecond)
	}
	lwg.Wait()
	cores, cpu, self := u.end()
	// The last deliveries land: wait while they still arrive (a loaded
	// machine delays them; what never comes is missing).
	sentN := 0
	for i := range st.sent {
		if st.sent[i].Load() > 0 {
			sentN++
		}
	}
	accepted := sentN - int(st.refused.Load())
	want := int64(accepted) * int64(len(viewers))
	drain := time.Now()
	for last, still := st.recv.Load(), time.Now(); st.recv.Load() < want && time.Since(still) < 5*time.Second && time.Since(drain) < 60*time.Second; time.Sleep(100 * time.Millisecond) {
		if n := st.recv.Load(); n != last {
			last, still = n, time.Now()
		}
		e.Progress.Set("chat: draining, %d of %d deliveries", st.recv.Load(), want)
	}
	drainS := time.Since(drain).Seconds()
	mAfter, _ := scrape(ctx, srv.Base+"/metrics")
	closed := 0
	for _, v := range viewers {
		if v.closed.Load() {
			closed++ // by the server
		}
		_ = v.conn.Close()
	}
	for _, v := range viewers { // the readers are done with their bitsets
		for !v.closed.Load() {
			time.Sleep(time.Millisecond)
		}
	}

	missing := 0
	for _, v := range viewers {
		received := 0
		for _, w := range v.got {
			received += bits.OnesCount64(w)
		}
		missing += accepted - received
	}
	r := Row{Scenario: "chat"}
	r.add("M", len(viewers))
	r.add("chatters", o.Chatters)
	r.add("msgs_per_s", float64(sentN)/o.ChatDuration.Seconds())
	r.add("reacts_per_s", o.ReactRate)
	r.add("connect_s", connectS)
	r.add("sent", sentN)
	r.add("refused", st.refused.Load())
	r.add("missing", missing)
	r.add("duplicates", st.dups.Load())
	r.add("seq_gaps", st.seqGaps.Load())
	r.add("closed", closed)
	r.add("drain_s", drainS)
	r.add("reactions_msgs_per_viewer_s", float64(st.react.Load())/float64(len(viewers))/o.ChatDuration.Seconds())
	r.add("p50_ms", histPercentile(st.hist, 0.5))
	r.add("p99_ms", histPercentile(st.hist, 0.99))
	r.add("max_ms", float64(st.maxLat.Load())/1e6)
	r.add("written_p99_ms", histQuantile(mBefore, mAfter, "streamd_overlay_push_delay_seconds", 0.99)*1000)
	r.add("server_cores", cores)
	perConnMsg := -1.0
	if cores >= 0 {
		delivered := float64(len(viewers)) * (float64(accepted) + float64(st.react.Load())/float64(len(viewers)))
		perConnMsg = float64(cpu.Microseconds()) / delivered
	}
	r.add("server_cpu_us_per_msg", perConnMsg)
	r.add("server_cpu_ms_per_conn_s", float64(cpu.Milliseconds())/float64(len(viewers))/o.ChatDuration.Seconds())
	rssMB, perConnKB := -1.0, -1.0
	if rssOK {
		rssMB = float64(rss) / (1 << 20)
		perConnKB = float64(rss-rssBase) / 1024 / float64(len(viewers)+len(idents)+len(reactors))
	}
	r.add("server_rss_MB", rssMB)
	r.add("rss_KB_per_conn", perConnKB)
	r.add("bench_cores", self)
	r.add("load1", loadAvg())
	return []Row{r}, nil
}

// loadAvg is the machine's 1-minute load average (-1 unknown): the box is
// shared, so the figures say what else was running.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return -1
	}
	return f
}
