package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestBalance: 10,000 short requests over 50 connections against a fast
// backend and one 5× slower. Least outstanding sends the fast one clearly
// more; round robin splits evenly.
func TestBalance(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		check    func(fast, slow int64) string
	}{
		{StrategyLeast, func(fast, slow int64) string {
			if share := float64(fast) / float64(fast+slow); share < 0.6 {
				return fmt.Sprintf("fast backend got %.0f%% (%d of %d), want ≥ 60%%", 100*share, fast, fast+slow)
			}
			return ""
		}},
		{StrategyRoundRobin, func(fast, slow int64) string {
			if d := fast - slow; d > 500 || d < -500 {
				return fmt.Sprintf("fast %d, slow %d: want an even split ±5%%", fast, slow)
			}
			return ""
		}},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			// fasthttp on both sides of the proxy here: 10,000 requests
			// through net/http twice cost the race detector a lot of CPU.
			fast := newFastBackend(t, 4*time.Millisecond)
			slow := newFastBackend(t, 20*time.Millisecond)
			p, addr := startProxy(t, Config{Strategy: tc.strategy})
			p.Add(1, "tcp", fast.addr)
			p.Add(2, "tcp", slow.addr)
			const total, conns = 10000, 50
			c := &fasthttp.HostClient{Addr: addr, MaxConns: conns, MaxConnWaitTimeout: 5 * time.Second,
				// not fasthttp's default dialer, whose DNS cache keeps a goroutine for good
				Dial: func(a string) (net.Conn, error) { return net.Dial("tcp", a) }}
			t.Cleanup(c.CloseIdleConnections)
			var next, failed atomic.Int64
			var wg sync.WaitGroup
			for range conns {
				wg.Go(func() {
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					req.SetRequestURI("http://" + addr + "/")
					for next.Add(1) <= total {
						if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Fatalf("%s: %d requests failed", tc.strategy, n)
			}
			t.Logf("%s: fast %d, slow %d", tc.strategy, fast.hits.Load(), slow.hits.Load())
			if msg := tc.check(fast.hits.Load(), slow.hits.Load()); msg != "" {
				t.Errorf("%s: %s", tc.strategy, msg)
			}
			for _, s := range p.Stats() {
				if s.InFlight != 0 {
					t.Errorf("%s: backend %d: %d still in flight", tc.strategy, s.ID, s.InFlight)
				}
			}
		})
	}
}

// fastBackend is a fasthttp backend that sleeps d per request.
type fastBackend struct {
	hits atomic.Int64
	addr string
}

func newFastBackend(t *testing.T, d time.Duration) *fastBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fastBackend{addr: ln.Addr().String()}
	srv := &fasthttp.Server{NoDefaultDate: true, Handler: func(ctx *fasthttp.RequestCtx) {
		b.hits.Add(1)
		time.Sleep(d)
		ctx.WriteString("ok")
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return b
}

// TestKillBackendUnderLoad: idempotent GETs see no error when a backend
// dies; it leaves the rotation; added again it rejoins.
func TestKillBackendUnderLoad(t *testing.T) {
	a := newBackend(t, ok)
	b := newBackend(t, ok)
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", a.addr)
	p.Add(2, "tcp", b.addr)
	c := client(t, 8)
	var stop atomic.Bool
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				code, body, err := get(t, c, "http://"+addr+"/")
				if err != nil || code != 200 || body != "ok" {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	b.kill()
	waitFor(t, "backend 2 to be marked down", 2*time.Second, func() bool {
		s, _ := stat(p, 2)
		return !s.Healthy
	})
	hitsA := a.hits.Load()
	time.Sleep(200 * time.Millisecond)
	if a.hits.Load() == hitsA {
		t.Error("backend 1 took no request while 2 was down")
	}
	b2 := newBackend(t, ok)
	p.Add(2, "tcp", b2.addr)
	waitFor(t, "the new backend 2 to take requests", 2*time.Second, func() bool { return b2.hits.Load() > 10 })
	stop.Store(true)
	wg.Wait()
	if n := errs.Load(); n > 0 {
		t.Errorf("%d GETs failed while a backend died (first: %v)", n, firstErr.Load())
	}
	if s, _ := stat(p, 2); !s.Healthy || s.Addr != b2.addr {
		t.Errorf("backend 2 after Add: %+v", s)
	}
}

// TestBackendDiesMidRequest: 502, and a POST is not retried; a GET moves
// to a healthy backend; a response cut off mid-body reaches the client
// as truncated.
func TestBackendDiesMidRequest(t *testing.T) {
	dying := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, _, _ := w.(http.Hijacker).Hijack()
		if r.URL.Path == "/half" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		}
		c.Close()
	})
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", dying.addr)
	c := client(t, 4)

	resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || dying.hits.Load() != 1 {
		t.Errorf("POST to a dying backend: %d %q after %d attempts; want 502 after 1", resp.StatusCode, body, dying.hits.Load())
	}

	resp, err = c.Get("http://" + addr + "/half")
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("response cut off mid-body arrived whole: %d %q", resp.StatusCode, body)
		}
	}

	healthy := newBackend(t, ok)
	p.Add(2, "tcp", healthy.addr)
	for i := range 6 {
		if code, body, err := get(t, c, "http://"+addr+"/"); err != nil || code != 200 {
			t.Errorf("GET %d with one dying backend of two: %d %q %v", i, code, body, err)
		}
	}
}

// TestRemoveFailsInFlight: a POST in flight on a removed backend gets 502.
func TestRemoveFailsInFlight(t *testing.T) {
	hang := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", hang.addr)
	c := client(t, 1)
	done := make(chan int, 1)
	go func() {
		resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitFor(t, "the POST to be in flight", 2*time.Second, func() bool { s, _ := stat(p, 1); return s.InFlight == 1 })
	p.Remove(1)
	select {
	case code := <-done:
		if code != 502 {
			t.Errorf("in-flight POST on a removed backend: %d, want 502", code)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("in-flight request still hanging after Remove")
	}
	if len(p.Stats()) != 0 {
		t.Errorf("Stats after Remove: %+v", p.Stats())
	}
}

// TestDrainWaitsForInFlight: a draining backend takes no new request; the
// channel closes when its slow request is done.
func TestDrainWaitsForInFlight(t *testing.T) {
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond); ok(w, r) })
	other := newBackend(t, ok)
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", slow.addr)
	c := client(t, 4)
	done := make(chan error, 1)
	go func() {
		code, _, err := get(t, c, "http://"+addr+"/")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		done <- err
	}()
	waitFor(t, "the slow request to be in flight", 2*time.Second, func() bool { s, _ := stat(p, 1); return s.InFlight == 1 })
	p.Add(2, "tcp", other.addr)
	drained := p.Drain(1)
	select {
	case <-drained:
		t.Fatal("Drain's channel closed with a request in flight")
	default:
	}
	if s, _ := stat(p, 1); s.State != "draining" {
		t.Errorf("state after Drain: %q", s.State)
	}
	for range 3 {
		get(t, c, "http://"+addr+"/")
	}
	if n := other.hits.Load(); n != 3 {
		t.Errorf("other backend took %d of 3 requests sent while 1 drained", n)
	}
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		t.Fatal("Drain's channel still open after the request ended")
	}
	if err := <-done; err != nil {
		t.Errorf("the request in flight during Drain: %v", err)
	}
	if slow.hits.Load() != 1 {
		t.Errorf("slow backend took %d requests, want 1", slow.hits.Load())
	}
}

// TestNoBackend: 503 at once.
func TestNoBackend(t *testing.T) {
	_, addr := startProxy(t, Config{})
	c := client(t, 1)
	t0 := time.Now()
	code, _, err := get(t, c, "http://"+addr+"/")
	if err != nil || code != 503 {
		t.Errorf("no backend: %d %v, want 503", code, err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("503 took %v", d)
	}
}

// TestStreaming: a large generated upload and download pass through
// without the heap growing; a server-sent event arrives before its stream
// ends.
func TestStreaming(t *testing.T) {
	const up, down = 256 << 20, 64 << 20
	sink := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			w.Header().Set("Content-Length", strconv.Itoa(down))
			io.Copy(w, &pattern{n: down})
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(500)
		}
		fmt.Fprint(w, n)
	})
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", sink.addr)
	c := client(t, 2)

	var peak atomic.Uint64
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	})
	defer func() { close(stop); sampler.Wait() }()

	for _, chunked := range []bool{false, true} {
		n := int64(up)
		if chunked {
			n = 32 << 20
		}
		req, _ := http.NewRequest("POST", "http://"+addr+"/", &pattern{n: n})
		req.ContentLength = n
		if chunked {
			req.ContentLength = -1
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("upload (chunked %v): %v", chunked, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != strconv.FormatInt(n, 10) {
			t.Errorf("upload (chunked %v) of %d bytes: %d %q", chunked, n, resp.StatusCode, body)
		}
	}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != down {
		t.Errorf("download: %d of %d bytes, %v", got, down, err)
	}
	if grew := int64(peak.Load()) - int64(base); grew > 48<<20 {
		t.Errorf("heap grew by %d MiB while streaming %d MiB", grew>>20, (up+down)>>20)
	}
	t.Logf("heap in use: %d MiB before, %d MiB peak", base>>20, peak.Load()>>20)
}

func TestServerSentEvents(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	sse := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: two\n\n")
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", sse.addr)
	resp, err := client(t, 1).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make(chan string, 1)
	br := bufio.NewReader(resp.Body)
	go func() {
		line, _ := br.ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "data: one\n" {
			t.Errorf("first event: %q", line)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("first event did not arrive before the stream ended")
	}
	once.Do(func() { close(release) })
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: two") {
		t.Errorf("rest of the stream: %q", rest)
	}
}

// TestHopByHop: hop-by-hop fields stop at the proxy both ways;
// X-Forwarded-For and -Proto are set.
func TestHopByHop(t *testing.T) {
	got := make(chan http.Header, 1)
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
		w.Header().Set("Connection", "X-Bar")
		w.Header().Set("X-Bar", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Keep", "1")
		ok(w, r)
	})
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", be.addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: 300\r\n"+
		"Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\nX-Keep: 1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	for _, k := range []string{"X-Foo", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", "Connection"} {
		if v := h.Get(k); v != "" {
			t.Errorf("request field %s: %q reached the backend", k, v)
		}
	}
	if h.Get("X-Keep") != "1" || h.Get("X-Forwarded-For") != "10.0.0.1, 127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("backend saw X-Keep %q, X-Forwarded-For %q, X-Forwarded-Proto %q",
			h.Get("X-Keep"), h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"))
	}
	for _, k := range []string{"X-Bar", "Keep-Alive"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("response field %s: %q reached the client", k, v)
		}
	}
	if resp.Header.Get("X-Keep") != "1" || resp.StatusCode != 200 {
		t.Errorf("response: %d, X-Keep %q", resp.StatusCode, resp.Header.Get("X-Keep"))
	}
	// HTTP/1.0 without Host still reaches the backend.
	if out, _ := rawRequest(t, addr, "GET / HTTP/1.0\r\n\r\n", 3*time.Second); !strings.Contains(out, " 200 ") || !strings.HasSuffix(out, "ok") {
		t.Errorf("HTTP/1.0 request without Host: %q", out)
	}
}

// TestUpgrade: an Upgrade request is passed through and the connection
// spliced both ways, bytes sent right behind the request included.
func TestUpgrade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		r, err := http.ReadRequest(br)
		if err != nil || r.Header.Get("Upgrade") != "echo" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		io.Copy(c, br) // echo until the client half-closes
	})
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
	br := bufio.NewReader(c)
	if status, err := readStatus(br); err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("upgrade answer: %q %v", status, err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo of the bytes behind the request: %q %v", buf, err)
	}
	io.WriteString(c, " world")
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != " world" {
		t.Errorf("echo after half-close: %q %v", rest, err)
	}
	waitFor(t, "the upgraded connection to be released", 2*time.Second, func() bool { s, _ := stat(p, 1); return s.InFlight == 0 })
}

// TestSticky: each client IP stays on one backend.
func TestSticky(t *testing.T) {
	p, addr := startProxy(t, Config{Sticky: true})
	for i := range 3 {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, i) })
		p.Add(i, "tcp", be.addr)
	}
	seen := map[string]bool{}
	for ip := 1; ip <= 8; ip++ {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(ip))}
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		first := ""
		for range 5 {
			code, body, err := get(t, c, "http://"+addr+"/")
			if err != nil || code != 200 {
				t.Fatalf("client 127.0.0.%d: %d %v", ip, code, err)
			}
			if first == "" {
				first = body
			} else if body != first {
				t.Errorf("client 127.0.0.%d went to backend %s, then %s", ip, first, body)
			}
		}
		tr.CloseIdleConnections()
		seen[first] = true
	}
	if len(seen) < 2 {
		t.Errorf("8 client IPs all went to one backend: %v", seen)
	}
}

// TestActiveHealth: a backend failing its check leaves the rotation and
// comes back when it passes.
func TestActiveHealth(t *testing.T) {
	var sick atomic.Bool
	a := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && sick.Load() {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, "a")
	})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	p, addr := startProxy(t, Config{HealthInterval: 20 * time.Millisecond, HealthPath: "/health"})
	p.Add(1, "tcp", a.addr)
	p.Add(2, "tcp", b.addr)
	sick.Store(true)
	waitFor(t, "backend 1 to fail its check", 2*time.Second, func() bool { s, _ := stat(p, 1); return !s.Healthy })
	c := client(t, 1)
	for range 6 {
		if _, body, err := get(t, c, "http://"+addr+"/"); err != nil || body != "b" {
			t.Errorf("request while backend 1 fails checks went to %q (%v)", body, err)
		}
	}
	sick.Store(false)
	waitFor(t, "backend 1 to pass again", 2*time.Second, func() bool { s, _ := stat(p, 1); return s.Healthy })
	seen := map[string]bool{}
	for range 6 {
		_, body, _ := get(t, c, "http://"+addr+"/")
		seen[body] = true
	}
	if !seen["a"] {
		t.Errorf("backend 1 took no request after its check passed: %v", seen)
	}
}

// TestRobustness: garbage, a huge header, a slowloris client and 1,000
// idle keep-alive connections do not disturb a normal client. (The
// issue's figure is 10,000 idle connections; 1,000 keeps the test fast,
// and the proxy holds no per-connection state that grows with the count
// but one goroutine and, with ReduceMemoryUsage, no buffer while idle.)
func TestRobustness(t *testing.T) {
	be := newBackend(t, ok)
	p, addr := startProxy(t, Config{ReadTimeout: 300 * time.Millisecond})
	p.Add(1, "tcp", be.addr)
	c := client(t, 1)
	normal := func(what string) {
		t.Helper()
		t0 := time.Now()
		if code, _, err := get(t, c, "http://"+addr+"/"); err != nil || code != 200 {
			t.Errorf("normal request %s: %d %v", what, code, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("normal request %s took %v", what, d)
		}
	}

	t.Run("garbage", func(t *testing.T) {
		out, err := rawRequest(t, addr, "\x16\x03\x01 not http at all\r\n\r\n", 3*time.Second)
		if err != nil || !strings.HasPrefix(out, "HTTP/1.1 400") {
			t.Errorf("garbage: %q %v; want 400 and the connection closed", out, err)
		}
		normal("after garbage")
	})

	t.Run("huge header", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		go func() {
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 1<<20)+"\r\n\r\n")
		}()
		status, err := readStatus(bufio.NewReader(conn))
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 431") {
			t.Errorf("1 MiB header: %q %v; want 431", status, err)
		}
		normal("after a huge header")
	})

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		t0 := time.Now()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			io.Copy(io.Discard, conn)
		}()
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	drip:
		for i := 0; ; i++ {
			select {
			case <-closed:
				break drip
			case <-time.After(50 * time.Millisecond):
				if _, err := fmt.Fprintf(conn, "X-%d: y\r\n", i); err != nil {
					break drip
				}
				if i%4 == 0 {
					normal("during a slowloris")
				}
			}
			if time.Since(t0) > 3*time.Second {
				t.Fatal("slowloris connection still open after 3s (ReadTimeout 300ms)")
			}
		}
		<-closed
		if d := time.Since(t0); d < 250*time.Millisecond {
			t.Errorf("slowloris cut after %v, before ReadTimeout", d)
		}
	})

	t.Run("idle connections", func(t *testing.T) {
		const idle = 1000
		conns := make([]net.Conn, 0, idle)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range idle {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("idle connection %d: %v", i, err)
			}
			conns = append(conns, conn)
			// One request each, answered at once; then the connection
			// sits idle. (Its answer is read now: the proxy closes a
			// connection idle for longer than its idle timeout, 300 ms
			// here, and a close may come as a reset that takes an unread
			// answer with it.)
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if status, err := readStatus(bufio.NewReader(conn)); err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
				t.Fatalf("connection %d: %q %v", i, status, err)
			}
			if i%100 == 0 {
				normal(fmt.Sprintf("with %d idle connections", i))
			}
		}
		normal(fmt.Sprintf("with %d idle connections", idle))
	})
}

// TestShutdown lets a request in flight finish, then Serve returns.
func TestShutdown(t *testing.T) {
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(200 * time.Millisecond); ok(w, r) })
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	p.Add(1, "tcp", slow.addr)
	c := client(t, 1)
	done := make(chan int, 1)
	go func() {
		code, _, _ := get(t, c, "http://"+ln.Addr().String()+"/")
		done <- code
	}()
	waitFor(t, "the request to be in flight", 2*time.Second, func() bool { s, _ := stat(p, 1); return s.InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if code := <-done; code != 200 {
		t.Errorf("request in flight during Shutdown: %d", code)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if err := p.Serve(ln); err != ErrClosed {
		t.Errorf("Serve on a closed proxy: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewRejectsUnknown(t *testing.T) {
	for _, cfg := range []Config{{Protocol: "udp"}, {Strategy: "random"}, {Protocol: "tcp", Sticky: true}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

func TestProbe(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
		}
	})
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		addr, path string
		ok         bool
	}{
		{be.addr, "", true},
		{be.addr, "/ready", true},
		{be.addr, "/bad", false},
		{gone, "", false},
		{gone, "/ready", false},
	} {
		err := Probe(probeCtx(t), "tcp", tc.addr, tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("Probe(%s, %q) = %v, want ok=%v", tc.addr, tc.path, err, tc.ok)
		}
	}
}

// TestConnectRefusedMoves: a refused connect sent nothing, so even a POST
// moves to the next backend, and the refusing one is marked down.
func TestConnectRefusedMoves(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := closed.Addr().String()
	closed.Close()
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { n, _ := io.Copy(io.Discard, r.Body); fmt.Fprint(w, n) })
	p, addr := startProxy(t, Config{Strategy: StrategyRoundRobin})
	p.Add(1, "tcp", gone)
	p.Add(2, "tcp", be.addr)
	c := client(t, 1)
	for i := range 4 {
		resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader("12345"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "5" {
			t.Errorf("POST %d with one refusing backend: %d %q", i, resp.StatusCode, body)
		}
	}
	if s, _ := stat(p, 1); s.Healthy || s.Failed == 0 {
		t.Errorf("refusing backend: %+v, want marked down", s)
	}
}

// TestUnixBackend: a backend on a unix socket.
func TestUnixBackend(t *testing.T) {
	path := t.TempDir() + "/app.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(ok)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p, addr := startProxy(t, Config{})
	p.Add(1, "unix", path)
	if code, body, err := get(t, client(t, 1), "http://"+addr+"/"); err != nil || code != 200 || body != "ok" {
		t.Errorf("via a unix socket: %d %q %v", code, body, err)
	}
	if err := Probe(probeCtx(t), "unix", path, "/"); err != nil {
		t.Errorf("Probe on a unix socket: %v", err)
	}
}

// TestTrailers: a chunked response's trailer fields reach the client.
func TestTrailers(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
	})
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", be.addr)
	resp, err := client(t, 1).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("body %q, trailer %v; want X-Checksum: abc", body, resp.Trailer)
	}
}
