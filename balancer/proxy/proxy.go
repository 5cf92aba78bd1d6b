package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Protocols and strategies Config accepts.
const (
	ProtocolHTTP = "http" // fasthttp reverse proxy, one backend per request
	ProtocolTCP  = "tcp"  // bytes spliced both ways, one backend per connection

	StrategyLeast      = "least"       // fewest requests (http) or connections (tcp) in flight
	StrategyRoundRobin = "round_robin" // each backend in turn
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns       = 10000
	DefaultReadTimeout    = 60 * time.Second
	DefaultWriteTimeout   = 60 * time.Second
	DefaultIdleTimeout    = 90 * time.Second
	DefaultBackendTimeout = 60 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
	DefaultHealthTimeout  = 2 * time.Second

	// backendIdle is how long an idle keep-alive connection to a backend
	// is kept. It is below the 5 s keep-alive timeout of Node's http
	// server, so the proxy closes an idle connection before the backend
	// does and a request never races the backend's close.
	backendIdle = 4 * time.Second
	// dialTimeout bounds a connect to a backend (on loopback a connect
	// succeeds or is refused at once; this only matters when the
	// backend's accept queue is full).
	dialTimeout = 3 * time.Second
	// markDownFor is how long a backend that refused a connection is
	// skipped (unless every backend is marked down).
	markDownFor = 2 * time.Second
	// maxAttempts bounds the backends one request is tried on.
	maxAttempts = 3
	// reclaimBatch is how many idle keep-alive connections are closed at
	// once when MaxConns is reached.
	reclaimBatch = 16
	// closeTimeout bounds Close's wait for goroutines.
	closeTimeout = 5 * time.Second
)

// Config is the proxy's configuration. Every zero value means the default
// named on its field.
type Config struct {
	// Protocol is "http" (default) or "tcp".
	Protocol string
	// Strategy is "least" (default: least outstanding requests for http,
	// least open connections for tcp) or "round_robin".
	Strategy string
	// Sticky (http only) pins a client IP to one backend, by rendezvous
	// hashing: the choice is stable while the set of healthy backends is,
	// and only the clients of a backend that leaves move.
	Sticky bool

	// MaxConns limits open client connections (default 10000). At the
	// limit, keep-alive connections idle between two requests are closed
	// to make room; if none is idle, new connections wait in the listen
	// queue until one closes.
	MaxConns int
	// ReadTimeout bounds reading a request's header, from its first byte
	// (default 60s; a slowloris client is cut by it), and then every read
	// of its body: an upload may take any time as long as no read waits
	// longer than ReadTimeout. In tcp mode it is unused.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of a response to the client (default
	// 60s): a long download or event stream lives as long as the client
	// keeps reading. In tcp mode it is unused.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive client connection that sends no new
	// request for this long (default 90s). In tcp mode it is unused.
	IdleTimeout time.Duration
	// BackendTimeout bounds each read and write on a connection to a
	// backend (default 60s): a backend that sends no byte of its response
	// for this long fails the request with 504 (or cuts the response off,
	// once it has started). A connection that makes progress is never cut.
	// In tcp mode it is unused: a spliced connection may stay idle.
	BackendTimeout time.Duration
	// MaxHeaderBytes limits a request's header (default 64 KiB); a larger
	// one gets 431 and the connection is closed. It is also the size of
	// each connection's read buffer while a request is read.
	MaxHeaderBytes int

	// HealthInterval turns active health checks on: every interval each
	// backend in rotation is probed (0, the default: off). A backend that
	// fails a check leaves the rotation until one passes.
	HealthInterval time.Duration
	// HealthPath is the path of the check: GET HealthPath must answer 2xx.
	// Empty: the check is a connect. Ignored in tcp mode (always a connect).
	HealthPath string
	// HealthTimeout bounds one check (default 2s).
	HealthTimeout time.Duration

	// Logf receives the proxy's log lines: backends that fail, leave and
	// come back. Nil: no log.
	Logf func(format string, args ...any)
}

func (c *Config) setDefaults() error {
	if c.Protocol == "" {
		c.Protocol = ProtocolHTTP
	}
	if c.Protocol != ProtocolHTTP && c.Protocol != ProtocolTCP {
		return fmt.Errorf("proxy: protocol %q: want %q or %q", c.Protocol, ProtocolHTTP, ProtocolTCP)
	}
	if c.Strategy == "" {
		c.Strategy = StrategyLeast
	}
	if c.Strategy != StrategyLeast && c.Strategy != StrategyRoundRobin {
		return fmt.Errorf("proxy: strategy %q: want %q or %q", c.Strategy, StrategyLeast, StrategyRoundRobin)
	}
	if c.Sticky && c.Protocol == ProtocolTCP {
		return errors.New("proxy: sticky needs protocol http")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.BackendTimeout, DefaultBackendTimeout)
	def(&c.HealthTimeout, DefaultHealthTimeout)
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Proxy forwards connections accepted by Serve to its backends. Its methods
// may be called from several goroutines.
type Proxy struct {
	cfg    Config
	srv    *fasthttp.Server // http only
	dialer net.Dialer

	mu       sync.Mutex
	backends map[int]*backend // by id; active and draining
	closed   bool             // under mu: Add is a no-op

	rotation atomic.Pointer[[]*backend] // active backends, rebuilt under mu
	next     atomic.Uint64              // round-robin cursor and tie-breaker

	slots     chan struct{} // one token per open client connection (MaxConns)
	clients   connGroup     // open client connections and the goroutines serving tcp/upgrades
	closing   chan struct{} // closed by Close/Shutdown: Accept returns
	closeOnce sync.Once
	lnMu      sync.Mutex
	listeners []net.Listener
}

// New returns a proxy with no backend. It fails only on an unknown
// Protocol or Strategy (or Sticky with tcp).
func New(cfg Config) (*Proxy, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:      cfg,
		dialer:   net.Dialer{Timeout: dialTimeout},
		backends: map[int]*backend{},
		slots:    make(chan struct{}, cfg.MaxConns),
		closing:  make(chan struct{}),
	}
	p.rotation.Store(&[]*backend{})
	if cfg.Protocol == ProtocolHTTP {
		p.srv = &fasthttp.Server{
			Handler:                      p.serveHTTP,
			ConnState:                    p.connState,
			Logger:                       logger(cfg.Logf),
			Concurrency:                  cfg.MaxConns,
			ReadBufferSize:               cfg.MaxHeaderBytes,
			ReadTimeout:                  cfg.ReadTimeout,
			WriteTimeout:                 cfg.WriteTimeout,
			IdleTimeout:                  cfg.IdleTimeout,
			StreamRequestBody:            true, // uploads are never buffered
			DisablePreParseMultipartForm: true, // nor parsed
			// The backend's Server and Content-Type pass through and
			// none is made up. Date: a proxied response gets the proxy's
			// (fasthttp replaces the backend's, as nginx does); the
			// proxy's own short error answers carry none.
			NoDefaultServerHeader: true,
			NoDefaultContentType:  true,
			NoDefaultDate:         true,
			CloseOnShutdown:       true,
			SecureErrorLogMessage: true,
			// Idle keep-alive connections give their (MaxHeaderBytes)
			// read buffer back, so 10,000 idle clients cost little.
			ReduceMemoryUsage: true,
		}
	}
	return p, nil
}

// Listener returns a listener on the socket f, as the balancer registry
// hands it out (blocking, CLOEXEC). It works on a duplicate of the fd:
// closing the listener (Close does) leaves f and the registry's socket
// open, and f stays the caller's to close. The duplicate is put in
// non-blocking mode for Go's poller, and O_NONBLOCK belongs to the open
// socket, not the fd: f becomes non-blocking too (harmless in proxy mode,
// where no worker inherits the public socket).
func Listener(f *os.File) (net.Listener, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listener from fd %d (%s): %w", f.Fd(), f.Name(), err)
	}
	return ln, nil
}

// Serve accepts connections on ln and forwards them until Close or
// Shutdown, then returns nil (ln is closed by then). It may be called for
// several listeners, concurrently. It returns an error if ln fails for
// another reason, or ErrClosed if the proxy is already closed.
func (p *Proxy) Serve(ln net.Listener) error {
	l := &limitListener{Listener: ln, p: p}
	p.lnMu.Lock()
	select {
	case <-p.closing:
		p.lnMu.Unlock()
		return ErrClosed
	default:
	}
	p.listeners = append(p.listeners, l)
	p.lnMu.Unlock()
	var err error
	if p.cfg.Protocol == ProtocolTCP {
		err = p.serveTCP(l)
	} else {
		err = p.srv.Serve(l)
	}
	if err != nil && p.isClosing() {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// ErrClosed is returned by Serve on a proxy that is closed.
var ErrClosed = errors.New("proxy: closed")

func (p *Proxy) isClosing() bool {
	select {
	case <-p.closing:
		return true
	default:
		return false
	}
}

// stopAccepting closes every listener; Serve returns.
func (p *Proxy) stopAccepting() {
	p.lnMu.Lock()
	defer p.lnMu.Unlock()
	select {
	case <-p.closing:
		return
	default:
	}
	close(p.closing)
	for _, l := range p.listeners {
		l.Close()
	}
}

// Shutdown stops accepting, lets the requests and connections in flight
// finish (keep-alive connections close after their current request) until
// ctx is done, then does what Close does. It returns ctx's error if work
// was still in flight when ctx ended.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.stopAccepting()
	var err error
	if p.srv != nil {
		err = p.srv.ShutdownWithContext(ctx)
	}
	if werr := p.clients.wait(ctx); err == nil {
		err = werr
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops accepting, closes every client and backend connection (work
// in flight fails), stops the health checks and waits (at most 5 s) for
// every goroutine of the proxy to end. It may be called more than once;
// later calls return nil at once.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.stopAccepting()
		p.mu.Lock()
		p.closed = true
		var bs []*backend
		for id, b := range p.backends {
			bs = append(bs, b)
			delete(p.backends, id)
		}
		p.rebuildLocked()
		p.mu.Unlock()
		for _, b := range bs {
			b.remove()
		}
		p.clients.closeAll()
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if p.srv != nil {
			err = p.srv.ShutdownWithContext(ctx)
		}
		if werr := p.clients.wait(ctx); err == nil {
			err = werr
		}
		for _, b := range bs {
			if werr := b.waitHealth(ctx); err == nil {
				err = werr
			}
		}
		if err != nil {
			err = fmt.Errorf("proxy close: %w", err)
		}
	})
	return err
}

type logger func(format string, args ...any)

func (l logger) Printf(format string, args ...any) { l("proxy: "+format, args...) }
