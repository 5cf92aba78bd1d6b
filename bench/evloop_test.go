package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBenchFramer feeds responses to the framer whole and one byte at a
// time, and checks where each ends and what it kept.
func TestBenchFramer(t *testing.T) {
	for _, c := range []struct {
		name, resp string
		status     int
		pid        string
		close      bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nX-Pid: 42\r\nContent-Length: 5\r\n\r\nhello", 200, "42", false},
		{"empty", "HTTP/1.1 204 No Content\r\nX-Pid: 7\r\n\r\n", 204, "7", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", 200, "", false},
		{"chunked trailer", "HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\nX-Pid: 1\r\n\r\n3\r\nabc\r\n0\r\nX-T: y\r\n\r\n", 500, "1", false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, "", true},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Pid: 3\r\nContent-Length: 0\r\n\r\n", 201, "3", false},
	} {
		for _, step := range []int{len(c.resp), 1, 7} {
			var f framer
			f.reset()
			p := newHeaderParser()
			b := []byte(c.resp + "NEXT") // bytes after the response are not taken
			pos, whole := 0, false
			for !whole && pos < len(c.resp) {
				chunk := b[pos:min(pos+step, len(c.resp))]
				for len(chunk) > 0 && !whole {
					used, w, err := f.feed(chunk, &p)
					if err != nil {
						t.Fatalf("%s (step %d): %v", c.name, step, err)
					}
					if used == 0 && !w {
						t.Fatalf("%s (step %d): feed used nothing at %d", c.name, step, pos)
					}
					chunk, pos, whole = chunk[used:], pos+used, w
				}
			}
			if !whole || pos != len(c.resp) || f.status != c.status || string(f.pid) != c.pid || f.close != c.close {
				t.Errorf("%s (step %d): whole %v at %d of %d, status %d, pid %q, close %v", c.name, step, whole, pos, len(c.resp), f.status, f.pid, f.close)
			}
		}
	}
	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
		"garbage\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxHeader) + "\r\n\r\n",
	} {
		var f framer
		f.reset()
		p := newHeaderParser()
		var err error
		for b := []byte(bad); len(b) > 0 && err == nil; {
			var used int
			used, _, err = f.feed(b[:min(len(b), 1000)], &p)
			b = b[used:]
		}
		if err == nil {
			t.Errorf("%.40q...: no error", bad)
		}
	}
}

// rawServer answers each connection on 127.0.0.1 with handle.
func rawServer(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + l.Addr().String() + "/"
}

// readRequest reads one request head; false when the client is gone.
func readRequest(br *bufio.Reader) bool {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\r\n" {
			return true
		}
	}
}

// TestBenchLoopFraming: the keep-alive loop against servers that frame
// their answers every way HTTP/1.1 allows, in small writes: every
// request is counted once, with no error.
func TestBenchLoopFraming(t *testing.T) {
	for _, c := range []struct {
		name  string
		write func(c net.Conn, n int64) (keep bool)
	}{
		{"chunked in pieces", func(c net.Conn, n int64) bool {
			for _, s := range []string{"HTTP/1.1 200 OK\r\nX-Pid: 1\r\nTransfer-", "Encoding: chunked\r\n\r\n4\r\nab", "cd\r\n", "0\r\n\r\n"} {
				c.Write([]byte(s))
				time.Sleep(100 * time.Microsecond)
			}
			return true
		}},
		{"close every third", func(c net.Conn, n int64) bool {
			if n%3 == 0 {
				c.Write([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\nX-Pid: 1\r\nContent-Length: 2\r\n\r\nok"))
				return false
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nX-Pid: 1\r\nContent-Length: 2\r\n\r\nok"))
			return true
		}},
		{"until close", func(c net.Conn, n int64) bool {
			c.Write([]byte("HTTP/1.0 200 OK\r\nX-Pid: 1\r\n\r\n" + strings.Repeat("x", 70000)))
			return false
		}},
		{"1 MB body", func(c net.Conn, n int64) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Pid: 1\r\nContent-Length: %d\r\n\r\n", 1<<20)
			c.Write(make([]byte, 1<<20))
			return true
		}},
	} {
		var served atomic.Int64
		url := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
			for readRequest(br) {
				if !c.write(conn, served.Add(1)) {
					return
				}
			}
		})
		res, err := Load{URL: url, Conns: 3, Duration: 10 * time.Second, MaxRequests: 60}.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 60 || res.Errors != 0 || res.PerPID["1"] != 60 || served.Load() != 60 {
			t.Errorf("%s: %d answers (%v), %d errors %v, server saw %d; want 60, 0", c.name, res.Requests, res.PerPID, res.Errors, res.FirstErrors, served.Load())
		}
	}
}

// TestBenchLoopFailures: a server that hangs up without answering, and
// one that never answers, cost an error per request (a timeout for the
// silent one) and the run still ends on time.
func TestBenchLoopFailures(t *testing.T) {
	hangUp := rawServer(t, func(c net.Conn, br *bufio.Reader) { readRequest(br) })
	res, err := Load{URL: hangUp, Conns: 2, Duration: 5 * time.Second, MaxRequests: 40}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 40 || res.Requests != 0 || len(res.FirstErrors) == 0 || !strings.Contains(res.FirstErrors[0], "closed the connection before answering") {
		t.Errorf("hang-up server: %d errors, %d answers, %q", res.Errors, res.Requests, res.FirstErrors)
	}

	silent := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		br.ReadByte() // until the client gives up
	})
	t0 := time.Now()
	res, err = Load{URL: silent, Conns: 2, Duration: 1500 * time.Millisecond, Timeout: 300 * time.Millisecond}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("a 1.5 s run took %v", took)
	}
	if res.Errors < 4 || res.Requests != 0 || !strings.Contains(res.FirstErrors[0], "timeout") {
		t.Errorf("silent server: %d errors, %d answers, %q; want ≥ 4 timeouts", res.Errors, res.Requests, res.FirstErrors)
	}
}

// TestBenchLoopEndlessBody: a server that streams a chunked body that
// never ends, as fast as it can, beside one that answers normally on the
// same loop: the endless requests time out, the normal ones go on, and
// the run ends on time.
func TestBenchLoopEndlessBody(t *testing.T) {
	endless := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat("x", 32<<10)))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	t0 := time.Now()
	res, err := Load{URL: endless, Conns: 2, Duration: 1500 * time.Millisecond, Timeout: 300 * time.Millisecond}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("a 1.5 s run took %v", took)
	}
	if res.Errors < 2 || res.Requests != 0 || !strings.Contains(res.FirstErrors[0], "timeout") {
		t.Errorf("endless body: %d errors, %d answers, %q; want timeouts", res.Errors, res.Requests, res.FirstErrors)
	}
}

// TestBenchLoopIPv6AndCancel: ::1 works, and cancelling the context ends
// the run early.
func TestBenchLoopIPv6AndCancel(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here:", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Pid", "6") })}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	res, err := Load{URL: "http://" + l.Addr().String() + "/", Conns: 4, Duration: 10 * time.Second}.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("cancelled after 300 ms, returned after %v", took)
	}
	if res.Requests == 0 || res.Errors != 0 || res.PerPID["6"] != res.Requests {
		t.Errorf("::1: %d answers %v, %d errors %v", res.Requests, res.PerPID, res.Errors, res.FirstErrors)
	}
}
