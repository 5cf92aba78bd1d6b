package proxy

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/valyala/fasthttp"
)

// serveUpgrade passes an Upgrade request (WebSocket, h2c, ...) through:
// the client connection is hijacked and spliced, bytes both ways, to a
// fresh connection to a backend, which answers the upgrade itself.
func (p *Proxy) serveUpgrade(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	var hash uint64
	if p.cfg.Sticky {
		hash = clientHash(ctx)
	}
	proto := append([]byte(nil), h.Peek("Upgrade")...)
	stripHopByHop(h)
	h.Set("Connection", "Upgrade")
	h.SetBytesV("Upgrade", proto)
	setForwarded(ctx)
	head := append([]byte(nil), h.Header()...) // ctx is gone once the handler returns
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) { p.spliceUpgrade(c, head, hash) })
}

// spliceUpgrade runs on fasthttp's hijack goroutine; fasthttp closes c
// when it returns.
func (p *Proxy) spliceUpgrade(c net.Conn, head []byte, hash uint64) {
	raw := c
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	defer p.clients.remove(raw, p)
	if !p.clients.enter() {
		return
	}
	defer p.clients.leave()
	b, bc, err := p.connect(hash)
	if err != nil {
		status := "502 Bad Gateway"
		if b == nil && errors.Is(err, errNoBackend) {
			status = "503 Service Unavailable"
		}
		io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad gateway\n")
		return
	}
	defer b.release()
	defer b.untrack(bc)
	b.served.Add(1)
	if _, err := bc.Write(head); err != nil {
		b.failed.Add(1)
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad gateway\n")
		return
	}
	splice(c, bc)
}

var errNoBackend = errors.New("no backend available")

// connect picks a backend and dials it, moving on (at most maxAttempts
// backends) while connects fail. On success the backend is in flight and
// the connection tracked: the caller releases and untracks them.
func (p *Proxy) connect(hash uint64) (*backend, net.Conn, error) {
	var tried [maxAttempts]*backend
	err := errNoBackend
	for n := 0; n < maxAttempts; n++ {
		b := p.pick(hash, tried[:n])
		if b == nil {
			break
		}
		tried[n] = b
		c, derr := b.dial(context.Background())
		if derr == nil {
			return b, c, nil
		}
		err = derr
		b.failed.Add(1)
		b.markDown(derr)
		b.release()
	}
	return nil, nil, err
}

// serveTCP accepts connections and splices each to a backend.
func (p *Proxy) serveTCP(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !p.clients.enter() {
			p.clients.remove(c, p)
			c.Close()
			return nil
		}
		go p.handleTCP(c)
	}
}

func (p *Proxy) handleTCP(c net.Conn) {
	defer p.clients.leave()
	defer p.clients.remove(c, p)
	defer c.Close()
	b, bc, err := p.connect(0)
	if err != nil {
		return // no backend: the client sees the connection close
	}
	defer b.release()
	defer b.untrack(bc)
	b.served.Add(1)
	splice(c, bc)
}

// splice copies bytes both ways until both directions end. A direction
// that reaches EOF half-closes the other side (CloseWrite), so a client
// that shuts down its sending side still gets the rest of the answer; a
// direction that fails closes both connections, which ends the other
// direction too. No goroutine outlives the call.
func splice(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, a)
	}()
	pipe(a, b)
	<-done
}

// pipe copies src to dst (splice(2) between two TCP sockets).
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		closeConn(dst)
		closeConn(src)
		return
	}
	if !closeWrite(dst) {
		closeConn(dst)
		closeConn(src)
	}
}

// closeWrite shuts down c's sending side; false if c cannot.
func closeWrite(c net.Conn) bool {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok { // fasthttp's hijacked conn
		c = u.UnsafeConn()
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite() == nil
	}
	return false
}

// closeConn closes c for good (a hijacked conn's Close is a no-op).
func closeConn(c net.Conn) {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn()
	}
	c.Close()
}
