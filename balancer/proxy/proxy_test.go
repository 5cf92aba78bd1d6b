package proxy

import (
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
