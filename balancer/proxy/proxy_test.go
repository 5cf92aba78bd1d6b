package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRequestURIUnchanged: the path and query reach the backend as the
// client sent them (no normalization, no re-encoding).
func TestRequestURIUnchanged(t *testing.T) {
	got := make(chan string, 1)
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { got <- r.RequestURI; ok(w, r) })
	p, addr := startProxy(t, Config{})
	p.Add(1, "tcp", be.addr)
	for _, uri := range []string{"/", "/a//b/../c/%2F%20?x=1&y=%41#", "/ü?q=a+b"} {
		out, _ := rawRequest(t, addr, "GET "+uri+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Errorf("GET %s: %q", uri, out)
			continue
		}
		if g := <-got; g != strings.TrimSuffix(uri, "#") {
			t.Errorf("GET %s reached the backend as %s", uri, g)
		}
	}
}

// TestListenerFromFile: the registry's *os.File serves, and stays open
// after Close.
func TestListenerFromFile(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := tl.(*net.TCPListener).File()
	tl.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln, err := Listener(f)
	if err != nil {
		t.Fatal(err)
	}
	be := newBackend(t, ok)
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(1, "tcp", be.addr)
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	if code, _, err := get(t, client(t, 1), "http://"+ln.Addr().String()+"/"); err != nil || code != 200 {
		t.Errorf("through a listener from a file: %d %v", code, err)
	}
	p.Close()
	<-served
	if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil {
		t.Errorf("the registry's fd after Close: %v", err)
	}
	if _, err := Listener(os.Stdin); err == nil {
		t.Error("Listener(stdin): no error")
	}
}

// TestMaxConnsReclaimsIdle: with every MaxConns slot held by an idle
// keep-alive connection, a new client is served at once and an idle one
// is closed to make room.
func TestMaxConnsReclaimsIdle(t *testing.T) {
	be := newBackend(t, ok)
	p, addr := startProxy(t, Config{MaxConns: 20})
	p.Add(1, "tcp", be.addr)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if status, err := readStatus(bufio.NewReader(c)); err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
			t.Fatalf("idle connection %d: %q %v", i, status, err)
		}
	}
	t0 := time.Now()
	if code, _, err := get(t, client(t, 1), "http://"+addr+"/"); err != nil || code != 200 {
		t.Fatalf("21st client: %d %v", code, err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("21st client waited %v", d)
	}
	closed := 0
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed == 0 {
		t.Error("no idle connection was closed to make room")
	}
}

// TestBackendSetEdges: Drain, Remove and Add on unknown, draining and
// closed states.
func TestBackendSetEdges(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Drain(99):
	default:
		t.Error("Drain of an unknown id: channel open")
	}
	p.Remove(99)
	p.Add(2, "tcp", "127.0.0.1:1")
	p.Add(1, "tcp", "127.0.0.1:2")
	d1, d2 := p.Drain(1), p.Drain(1)
	if d1 != d2 {
		t.Error("Drain twice: two channels")
	}
	select {
	case <-d1:
	default:
		t.Error("Drain with nothing in flight: channel open")
	}
	st := p.Stats()
	if len(st) != 2 || st[0].ID != 1 || st[0].State != "draining" || st[1].State != "active" {
		t.Errorf("Stats: %+v", st)
	}
	p.Add(1, "tcp", "127.0.0.1:2") // a new worker under a draining id replaces it
	if s, _ := stat(p, 1); s.State != "active" {
		t.Errorf("Add over a draining id: %+v", s)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	p.Add(3, "tcp", "127.0.0.1:3")
	if st := p.Stats(); len(st) != 0 {
		t.Errorf("Stats after Close: %+v", st)
	}
}
