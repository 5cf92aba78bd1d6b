package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// backendState is where a backend is in its life. Every change goes
// through backend.setState, which allows only the moves named here.
type backendState int32

const (
	// stateActive: in rotation, new work may be routed to it.
	// Next: stateDraining, stateRemoved.
	stateActive backendState = iota
	// stateDraining: out of rotation; work in flight finishes.
	// Next: stateRemoved.
	stateDraining
	// stateRemoved: gone; its connections are closed. Terminal.
	stateRemoved
)

func (s backendState) String() string {
	switch s {
	case stateActive:
		return "active"
	case stateDraining:
		return "draining"
	default:
		return "removed"
	}
}

// backend is one worker's private address and everything the proxy keeps
// for it.
type backend struct {
	id      int
	network string
	addr    string
	p       *Proxy
	hc      *fasthttp.HostClient // http only

	state     atomic.Int32 // backendState
	inflight  atomic.Int64 // requests (http) or connections (tcp) routed here and not finished
	served    atomic.Uint64
	failed    atomic.Uint64
	downUntil atomic.Int64 // unix ns; passive mark: a connect failed
	failing   atomic.Bool  // active mark: the last check failed
	lastLog   atomic.Int64 // unix ns of the last failure logged

	drained   chan struct{} // closed once out of rotation with nothing in flight
	drainOnce sync.Once

	connMu sync.Mutex
	conns  map[net.Conn]struct{} // every open connection to the backend
	gone   bool                  // under connMu: removed, dial fails

	healthStop context.CancelFunc // nil: no active checks
	healthDone chan struct{}
}

// BackendStats is one backend as `launch ls` shows it.
type BackendStats struct {
	ID      int
	Network string // "tcp" or "unix"
	Addr    string
	State   string // "active" (in rotation) or "draining"
	// Healthy is false while the backend is marked down: a connect to it
	// failed in the last 2 s, or its last active check failed.
	Healthy  bool
	InFlight int64  // requests (http) or connections (tcp) in flight
	Served   uint64 // responses (http) or connections (tcp) it took
	Failed   uint64 // attempts that failed on it (connect, reset, timeout)
}

func (p *Proxy) newBackend(id int, network, addr string) *backend {
	b := &backend{id: id, network: network, addr: addr, p: p,
		drained: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	if p.cfg.Protocol == ProtocolHTTP {
		b.hc = &fasthttp.HostClient{
			Addr:                     addr,
			Dial:                     b.dialHTTP,
			MaxConns:                 p.cfg.MaxConns,
			MaxIdleConnDuration:      backendIdle,
			ReadBufferSize:           p.cfg.MaxHeaderBytes,
			StreamResponseBody:       true, // responses are never buffered
			DisablePathNormalizing:   true, // the path goes on as it came
			NoDefaultUserAgentHeader: true,
			// One attempt per HostClient.Do: the proxy decides about
			// retries itself, on another backend (see forward).
			MaxIdemponentCallAttempts: 1,
			RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) {
				return false, false
			},
			ConnPoolStrategy: fasthttp.LIFO, // hot connections; idle ones age out
		}
	}
	return b
}

// Add puts backend id (network "tcp" or "unix", addr as net.Dial takes it)
// into rotation: call it when the worker is ready. An id already present
// with the same address just rejoins (its passive and active marks are
// cleared); with another address, or draining, the old backend is removed
// first (as Remove). Ids must be unique per worker process (a pid, or a
// generation counter), not reused per slot. A no-op after Close.
func (p *Proxy) Add(id int, network, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if old := p.backends[id]; old != nil {
		if old.network == network && old.addr == addr && backendState(old.state.Load()) == stateActive {
			old.downUntil.Store(0)
			old.failing.Store(false)
			p.cfg.Logf("proxy: backend %d (%s) rejoins", id, addr)
			return
		}
		delete(p.backends, id)
		p.rebuildLocked()
		old.remove()
	}
	b := p.newBackend(id, network, addr)
	p.backends[id] = b
	p.rebuildLocked()
	if p.cfg.HealthInterval > 0 {
		b.startHealth()
	}
}

// Drain takes backend id out of rotation now: no new request or connection
// goes to it. The channel closes when the work in flight on it is done
// (http requests answered, upgraded and tcp connections closed); the
// caller bounds the wait. Unknown ids get a closed channel. It may be
// called more than once.
func (p *Proxy) Drain(id int) <-chan struct{} {
	p.mu.Lock()
	b := p.backends[id]
	if b == nil {
		p.mu.Unlock()
		c := make(chan struct{})
		close(c)
		return c
	}
	b.setState(stateDraining)
	p.rebuildLocked()
	p.mu.Unlock()
	if b.inflight.Load() == 0 {
		b.closeDrained()
	}
	return b.drained
}

// Remove forgets backend id (its process is gone): out of rotation, its
// connections closed. Requests in flight on it fail with 502, or are
// retried on another backend where that is safe (see serveHTTP). Unknown
// ids are ignored.
func (p *Proxy) Remove(id int) {
	p.mu.Lock()
	b := p.backends[id]
	if b == nil {
		p.mu.Unlock()
		return
	}
	delete(p.backends, id)
	p.rebuildLocked()
	p.mu.Unlock()
	b.remove()
}

// Stats returns every backend in rotation or draining, by id.
func (p *Proxy) Stats() []BackendStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().UnixNano()
	out := make([]BackendStats, 0, len(p.backends))
	for _, b := range p.backends {
		out = append(out, BackendStats{
			ID: b.id, Network: b.network, Addr: b.addr,
			State:    backendState(b.state.Load()).String(),
			Healthy:  b.downUntil.Load() <= now && !b.failing.Load(),
			InFlight: b.inflight.Load(),
			Served:   b.served.Load(),
			Failed:   b.failed.Load(),
		})
	}
	for i := 1; i < len(out); i++ { // by id; a handful of backends
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// rebuildLocked publishes the rotation: every active backend, by id.
func (p *Proxy) rebuildLocked() {
	rot := make([]*backend, 0, len(p.backends))
	for _, b := range p.backends {
		if backendState(b.state.Load()) == stateActive {
			rot = append(rot, b)
		}
	}
	for i := 1; i < len(rot); i++ {
		for j := i; j > 0 && rot[j].id < rot[j-1].id; j-- {
			rot[j], rot[j-1] = rot[j-1], rot[j]
		}
	}
	p.rotation.Store(&rot)
}

// setState moves b forward (active → draining → removed); any other move
// is ignored, so Drain after Remove changes nothing.
func (b *backend) setState(to backendState) bool {
	for {
		from := backendState(b.state.Load())
		if to <= from {
			return false
		}
		if b.state.CompareAndSwap(int32(from), int32(to)) {
			return true
		}
	}
}

// remove ends b: removed, every connection closed, checks stopped.
func (b *backend) remove() {
	b.setState(stateRemoved)
	if b.healthStop != nil {
		b.healthStop()
	}
	b.connMu.Lock()
	b.gone = true
	cs := make([]net.Conn, 0, len(b.conns))
	for c := range b.conns {
		cs = append(cs, c)
	}
	b.connMu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	if b.hc != nil {
		b.hc.CloseIdleConnections()
	}
	b.closeDrained()
}

func (b *backend) closeDrained() { b.drainOnce.Do(func() { close(b.drained) }) }

// release ends one piece of work routed to b.
func (b *backend) release() {
	if b.inflight.Add(-1) == 0 && backendState(b.state.Load()) != stateActive {
		b.closeDrained()
	}
}

// markDown records a failed connect: b is skipped for markDownFor.
func (b *backend) markDown(err error) {
	was := b.downUntil.Swap(time.Now().Add(markDownFor).UnixNano())
	if was < time.Now().UnixNano() {
		b.p.cfg.Logf("proxy: backend %d (%s) marked down for %v: %v", b.id, b.addr, markDownFor, err)
	}
}

// dialError is a failed connect: nothing of the request was sent.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string {
	var oe *net.OpError
	if errors.As(e.err, &oe) { // it names the operation and the address already
		return e.err.Error()
	}
	return fmt.Sprintf("dial %s: %v", e.addr, e.err)
}
func (e *dialError) Unwrap() error { return e.err }

var errBackendGone = errors.New("backend removed")

// dial connects to b and tracks the connection, so remove can close it.
// The caller closes it with b.untrack.
func (b *backend) dial(ctx context.Context) (net.Conn, error) {
	c, err := b.p.dialer.DialContext(ctx, b.network, b.addr)
	if err != nil {
		return nil, &dialError{b.addr, err}
	}
	b.connMu.Lock()
	if b.gone {
		b.connMu.Unlock()
		c.Close()
		return nil, &dialError{b.addr, errBackendGone}
	}
	b.conns[c] = struct{}{}
	b.connMu.Unlock()
	return c, nil
}

// untrack closes c and forgets it.
func (b *backend) untrack(c net.Conn) {
	b.connMu.Lock()
	delete(b.conns, c)
	b.connMu.Unlock()
	c.Close()
}

// dialHTTP is the HostClient's dialer: tracked connections whose reads
// and writes each get BackendTimeout.
func (b *backend) dialHTTP(string) (net.Conn, error) {
	c, err := b.dial(context.Background())
	if err != nil {
		return nil, err
	}
	bc := &backendConn{Conn: c, b: b, timeout: b.p.cfg.BackendTimeout}
	b.connMu.Lock()
	delete(b.conns, c)
	b.conns[bc] = struct{}{}
	b.connMu.Unlock()
	return bc, nil
}

// backendConn is a keep-alive connection to a backend. Each Read and Write
// may wait at most timeout (between ¾ and all of it: the deadline moves
// only when a quarter of it is used, to spare the timer).
type backendConn struct {
	net.Conn
	b        *backend
	timeout  time.Duration
	rdl, wdl time.Time
	once     sync.Once
}

func (c *backendConn) Read(p []byte) (int, error) {
	if now := time.Now(); c.rdl.Sub(now) < c.timeout*3/4 {
		c.rdl = now.Add(c.timeout)
		c.Conn.SetReadDeadline(c.rdl)
	}
	return c.Conn.Read(p)
}

func (c *backendConn) Write(p []byte) (int, error) {
	if now := time.Now(); c.wdl.Sub(now) < c.timeout*3/4 {
		c.wdl = now.Add(c.timeout)
		c.Conn.SetWriteDeadline(c.wdl)
	}
	return c.Conn.Write(p)
}

// SetReadDeadline and SetWriteDeadline are fasthttp's (it clears
// deadlines on a fresh connection); the next Read or Write sets ours.
func (c *backendConn) SetReadDeadline(t time.Time) error {
	c.rdl = t
	return c.Conn.SetReadDeadline(t)
}

func (c *backendConn) SetWriteDeadline(t time.Time) error {
	c.wdl = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *backendConn) Close() error {
	var err error
	c.once.Do(func() {
		c.b.connMu.Lock()
		delete(c.b.conns, c)
		c.b.connMu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// isTemporary reports accept errors worth retrying after a pause.
func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM)
}
