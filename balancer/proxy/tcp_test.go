package proxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers each connection with everything it read, once the
// client has half-closed, then closes.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				b, err := io.ReadAll(c)
				if err != nil {
					return
				}
				c.Write(b)
			})
		}
	})
	return ln.Addr().String()
}

// TestTCPHalfClose: bytes go both ways and a client's half-close reaches
// the backend, whose answer still comes back.
func TestTCPHalfClose(t *testing.T) {
	p, addr := startProxy(t, Config{Protocol: ProtocolTCP})
	p.Add(1, "tcp", echoServer(t))
	p.Add(2, "tcp", echoServer(t))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			msg := []byte("message number " + string(rune('a'+i)))
			if _, err := c.Write(msg); err != nil {
				t.Error(err)
				return
			}
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != string(msg) {
				t.Errorf("connection %d: echo %q %v, want %q", i, got, err, msg)
			}
		})
	}
	wg.Wait()
	waitFor(t, "every connection to be released", 2*time.Second, func() bool {
		for _, s := range p.Stats() {
			if s.InFlight != 0 {
				return false
			}
		}
		return true
	})
	var served uint64
	for _, s := range p.Stats() {
		served += s.Served
	}
	if served != 20 {
		t.Errorf("backends took %d connections, want 20", served)
	}
}

// TestTCPNoBackend: with no backend the client's connection closes.
func TestTCPNoBackend(t *testing.T) {
	p, addr := startProxy(t, Config{Protocol: ProtocolTCP})
	echo := echoServer(t)
	p.Add(1, "tcp", echo)
	p.Remove(1)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read with no backend: %d %v, want EOF", n, err)
	}
}

// TestTCPDrain: a draining backend's open connection keeps working; the
// channel closes when it ends; new connections go elsewhere.
func TestTCPDrain(t *testing.T) {
	p, addr := startProxy(t, Config{Protocol: ProtocolTCP})
	p.Add(1, "tcp", echoServer(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	waitFor(t, "the connection to reach backend 1", 2*time.Second, func() bool { s, _ := stat(p, 1); return s.InFlight == 1 })
	p.Add(2, "tcp", echoServer(t))
	drained := p.Drain(1)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	waitFor(t, "a new connection to reach backend 2", 2*time.Second, func() bool { s, _ := stat(p, 2); return s.Served == 1 })
	select {
	case <-drained:
		t.Fatal("drained with a connection open")
	default:
	}
	c.Write([]byte("still here"))
	c.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(c); string(got) != "still here" {
		t.Errorf("draining backend's connection: %q %v", got, err)
	}
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		t.Fatal("Drain's channel still open after the connection ended")
	}
}
