package balancer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/launch-go/launch/balancer/proxy"
	"github.com/launch-go/launch/config"
)

// Router runs an app in balance: proxy. The master accepts on the app's
// public sockets (from the registry) and the proxy engine forwards to the
// workers, each of which listens on a private address that Router hands
// out: a 127.0.0.1 port outside the kernel's ephemeral range (so an
// outgoing connection cannot be holding it), or a unix socket in the
// master's runtime directory with proxy_to: unix.
//
// Its methods may be called from several goroutines (recovery.Router).
type Router struct {
	app    string
	to     string
	dir    string
	p      *proxy.Proxy
	serves sync.WaitGroup

	mu     sync.Mutex
	ports  map[int]bool // private ports handed out and not yet released
	seq    int
	lo, hi int // private port range
}

// NewRouter starts the proxy for app on set's public sockets. runDir holds
// the workers' unix sockets (proxy_to: unix). logf receives the proxy's
// notes.
func NewRouter(app *config.App, set *Set, runDir string, logf func(string, ...any)) (*Router, error) {
	pc := app.Proxy
	if pc == nil {
		return nil, fmt.Errorf("app %s: not in balance proxy", app.Name)
	}
	// The app file's 0 means no limit; the engine's 0 means its default.
	limit := func(d time.Duration) time.Duration {
		if d == 0 {
			return 100 * 365 * 24 * time.Hour
		}
		return d
	}
	p, err := proxy.New(proxy.Config{
		Protocol: pc.Protocol, Strategy: pc.Strategy, Sticky: pc.Sticky,
		MaxConns: pc.MaxConns, ReadTimeout: limit(pc.ReadTimeout), WriteTimeout: limit(pc.WriteTimeout), IdleTimeout: limit(pc.IdleTimeout),
		MaxHeaderBytes: pc.MaxHeaderBytes,
		HealthPath:     pc.HealthPath, HealthInterval: pc.HealthInterval, HealthTimeout: pc.HealthTimeout,
		Logf: logf,
	})
	if err != nil {
		return nil, fmt.Errorf("app %s: proxy: %w", app.Name, err)
	}
	r := &Router{app: app.Name, to: pc.To, dir: runDir, p: p, ports: map[int]bool{}}
	r.lo, r.hi = privateRange()
	set.reg.mu.Lock()
	socks := append([]*Socket(nil), set.socks...)
	set.reg.mu.Unlock()
	for _, k := range socks {
		ln, err := proxy.Listener(k.File())
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("app %s: %w", app.Name, err)
		}
		r.serves.Add(1)
		go func() {
			defer r.serves.Done()
			if err := p.Serve(ln); err != nil && !errors.Is(err, proxy.ErrClosed) && logf != nil {
				logf("proxy on %s stopped: %v", k.Addr(), err)
			}
		}()
	}
	return r, nil
}

// privateRange is where private ports come from: below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range, default 32768–60999),
// from 10000 up.
func privateRange() (lo, hi int) {
	lo, hi = 10000, 32767
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		if eph, err := strconv.Atoi(f[0]); err == nil && eph > 2048 {
			hi = eph - 1
			if lo >= hi {
				lo = 1024
			}
		}
	}
	return lo, hi
}

// Assign picks a fresh private address for slot's next worker. A port is
// checked free by binding it once; a worker that still loses the race
// fails with EADDRINUSE and its next start gets another port.
func (r *Router) Assign(slot int) (map[string]string, string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if r.to == config.ProxyToUnix {
		path := filepath.Join(r.dir, fmt.Sprintf("%s.%d.%d.sock", r.app, slot, r.seq))
		os.Remove(path)
		return map[string]string{"LAUNCH_SOCKET": path}, "unix", path, nil
	}
	for try := 0; try < 200; try++ {
		port := r.lo + rand.IntN(r.hi-r.lo+1)
		if r.ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		r.ports[port] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p := strconv.Itoa(port)
		return map[string]string{"PORT": p, "LAUNCH_PORT": p, "HOST": "127.0.0.1"}, "tcp", addr, nil
	}
	return nil, "", "", fmt.Errorf("app %s: no free private port in %d–%d", r.app, r.lo, r.hi)
}

// Probe checks a worker's private address (proxy.Probe).
func (r *Router) Probe(ctx context.Context, network, addr, path string) error {
	return proxy.Probe(ctx, network, addr, path)
}

// Up puts the worker in the rotation.
func (r *Router) Up(pid int, network, addr string) { r.p.Add(pid, network, addr) }

// Drain takes the worker out of the rotation (proxy.Drain).
func (r *Router) Drain(pid int) <-chan struct{} { return r.p.Drain(pid) }

// Down forgets a worker whose process is gone and frees its address.
func (r *Router) Down(pid int, network, addr string) {
	r.p.Remove(pid)
	if network == "unix" {
		os.Remove(addr)
		return
	}
	if _, p, err := net.SplitHostPort(addr); err == nil {
		n, _ := strconv.Atoi(p)
		r.mu.Lock()
		delete(r.ports, n)
		r.mu.Unlock()
	}
}

// Stats are the proxy's per-worker figures, by pid.
func (r *Router) Stats() map[int]proxy.BackendStats {
	out := map[int]proxy.BackendStats{}
	for _, s := range r.p.Stats() {
		out[s.ID] = s
	}
	return out
}

// Close stops accepting and ends the proxy's connections.
func (r *Router) Close() error {
	err := r.p.Close()
	r.serves.Wait()
	return err
}

// Shutdown stops accepting and waits (until ctx is done) for the requests
// in flight.
func (r *Router) Shutdown(ctx context.Context) error { return r.p.Shutdown(ctx) }
