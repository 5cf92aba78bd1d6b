package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Client connections: each holds one of MaxConns slots from accept to
// close; Close closes them all.

// connState tracks the http server's client connections: they hold a
// MaxConns slot until they close, and Close closes them.
func (p *Proxy) connState(c net.Conn, s fasthttp.ConnState) {
	switch s {
	case fasthttp.StateClosed:
		p.clients.remove(c, p)
	case fasthttp.StateIdle:
		p.clients.setIdle(c, true)
	case fasthttp.StateActive:
		p.clients.setIdle(c, false)
	}
	// StateHijacked: the upgrade's splice removes it when it ends.
}

// takeSlot waits for a MaxConns slot; false once the proxy is closing.
// When every slot is taken, keep-alive connections waiting for their next
// request make room (nginx reuses its connections the same way), so idle
// clients never lock busy ones out; a client whose idle connection is
// closed opens a new one, as after IdleTimeout.
func (p *Proxy) takeSlot() bool {
	for {
		select {
		case p.slots <- struct{}{}:
			return true
		default:
		}
		p.clients.closeIdle(reclaimBatch)
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case p.slots <- struct{}{}:
			t.Stop()
			return true
		case <-p.closing:
			t.Stop()
			return false
		case <-t.C: // connections that went idle meanwhile can make room
		}
	}
}

// limitListener holds a MaxConns slot per accepted connection and survives
// the accept errors a busy server sees (EMFILE, ECONNABORTED).
type limitListener struct {
	net.Listener
	p    *Proxy
	once sync.Once
}

// Close closes the listener; later calls return nil (Close and fasthttp's
// Shutdown both close it).
func (l *limitListener) Close() error {
	var err error
	l.once.Do(func() { err = l.Listener.Close() })
	return err
}

func (l *limitListener) Accept() (net.Conn, error) {
	p := l.p
	var backoff time.Duration
	for {
		if !p.takeSlot() {
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-p.slots
			if errors.Is(err, net.ErrClosed) || p.isClosing() {
				return nil, net.ErrClosed
			}
			var ne net.Error
			if !isTemporary(err) && !(errors.As(err, &ne) && ne.Timeout()) {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.cfg.Logf("proxy: accept on %s: %v; retrying in %v", l.Addr(), err, backoff)
			select {
			case <-time.After(backoff):
			case <-p.closing:
				return nil, net.ErrClosed
			}
			continue
		}
		if !p.clients.add(c) {
			c.Close()
			<-p.slots
			return nil, net.ErrClosed
		}
		return c, nil
	}
}

// connGroup is the set of open client connections, each holding a slot of
// Proxy.slots, and a count of the proxy's own goroutines serving them (tcp
// splices and upgrades), so that Close can close the one and wait for the
// other.
type connGroup struct {
	conns sync.Map // net.Conn → *clientConn

	mu     sync.Mutex
	closed bool
	busy   int
	idle   chan struct{} // made by wait; closed when busy reaches 0
}

// clientConn is what the group knows of one client connection.
type clientConn struct {
	idle atomic.Bool // http: between two requests of a keep-alive connection
}

// add registers c; false once the group is closed.
func (g *connGroup) add(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns.Store(c, &clientConn{})
	return true
}

// remove forgets c and frees its slot; a second remove is a no-op.
func (g *connGroup) remove(c net.Conn, p *Proxy) {
	if _, ok := g.conns.LoadAndDelete(c); ok {
		<-p.slots
	}
}

// setIdle records whether c waits for its next request.
func (g *connGroup) setIdle(c net.Conn, idle bool) {
	if v, ok := g.conns.Load(c); ok {
		v.(*clientConn).idle.Store(idle)
	}
}

// closeIdle closes up to n keep-alive connections that wait for their next
// request, and returns how many it closed.
func (g *connGroup) closeIdle(n int) int {
	closed := 0
	g.conns.Range(func(k, v any) bool {
		if v.(*clientConn).idle.CompareAndSwap(true, false) {
			k.(net.Conn).Close()
			closed++
		}
		return closed < n
	})
	return closed
}

// enter counts a goroutine in; false once the group is closed.
func (g *connGroup) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.busy++
	return true
}

func (g *connGroup) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy--
	if g.busy == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// closeAll closes every connection; enter and add fail from now on.
func (g *connGroup) closeAll() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.conns.Range(func(k, _ any) bool {
		k.(net.Conn).Close()
		return true
	})
}

// wait returns when no goroutine is in, or with ctx's error.
func (g *connGroup) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.busy == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
