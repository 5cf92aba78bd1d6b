// Command hello is launch's example app: a small net/http server that speaks
// systemd socket activation, so launch (or systemd) can run many copies of it
// behind sockets the master owns.
//
// Sockets: launch binds the addresses in the app file and hands them to each
// worker as fds 3, 4, ... with LISTEN_FDS=n, LISTEN_PID=<worker pid> and
// LISTEN_FDNAMES=a:b. activation.Listeners picks them up (it ignores them if
// LISTEN_PID names another process). Run by hand, without LISTEN_FDS, hello
// binds $HOST:$PORT itself (default 127.0.0.1:8080).
//
// Readiness: once it serves, hello sends READY=1 to $NOTIFY_SOCKET (a no-op
// when the variable is unset), which is what `ready: notify` waits for.
//
// Stopping (SIGTERM or SIGINT) follows the "drain" recipe, so a rolling reload
// loses no request: close this process's copy of the listening sockets (the
// master keeps the socket open, other workers keep accepting), answer every
// further request with "Connection: close", close connections still idle
// 500 ms into the drain, exit 0 once none is left (at most DRAIN_MAX_MS,
// default 1500, after the signal), after lingering DRAIN_LINGER_MS (default
// 300) so that a connection handed over at the last moment is not stranded.
//
// Routes: / (hello from <pid>), /pid, /slow?ms=N, /crash (exit 1), /env?k=NAME.
// SLOW_INSTANCE=k and SLOW_US=n make instance k spend n µs of CPU on each /.
// Every response carries X-Pid and X-Version ($VERSION, else -ldflags
// "-X main.version=...", else "1").
package main

import (
	"cmp"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

var version = "1"

func main() {
	log.SetFlags(0)
	version = cmp.Or(os.Getenv("VERSION"), version)
	pid := strconv.Itoa(os.Getpid())

	mux := http.NewServeMux()
	// SLOW_INSTANCE=k with SLOW_US=n makes instance k (LAUNCH_INSTANCE)
	// burn n µs of CPU per request to / — a slow worker, for fairness
	// benchmarks.
	var slow time.Duration
	if k := os.Getenv("SLOW_INSTANCE"); k != "" && k == os.Getenv("LAUNCH_INSTANCE") {
		us, _ := strconv.Atoi(os.Getenv("SLOW_US"))
		slow = time.Duration(us) * time.Microsecond
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		for t0 := time.Now(); time.Since(t0) < slow; {
		}
		fmt.Fprintf(w, "hello from %s\n", pid)
	})
	mux.HandleFunc("GET /pid", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, pid)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		ms = min(max(ms, 0), 30000)
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			fmt.Fprintf(w, "slept %d ms\n", ms)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /crash", func(w http.ResponseWriter, r *http.Request) {
		log.Print("crashing on request")
		os.Exit(1)
	})
	// /alloc?mb=N holds N MiB more of touched memory (for
	// max_memory_restart tests and demos).
	var held [][]byte
	var heldMu sync.Mutex
	mux.HandleFunc("GET /alloc", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		mb = min(max(mb, 0), 4096)
		b := make([]byte, mb<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		heldMu.Lock()
		held = append(held, b)
		heldMu.Unlock()
		fmt.Fprintf(w, "holding %d MiB more\n", mb)
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("k"))
		if !ok {
			http.Error(w, "not set", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, v)
	})

	d := &drainer{conns: map[net.Conn]http.ConnState{}, done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Pid", pid)
			w.Header().Set("X-Version", version)
			if d.draining() {
				w.Header().Set("Connection", "close") // net/http closes after this response
			}
			mux.ServeHTTP(w, r)
		}),
		ConnState:         d.connState,
		ReadHeaderTimeout: 10 * time.Second,
	}

	sig := make(chan os.Signal, 2) // before READY=1: a stop may follow it at once
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	d.listeners = listen()
	for _, l := range d.listeners {
		go func() {
			if err := srv.Serve(l); err != nil && !d.draining() {
				log.Fatalf("serve %s: %v", l.Addr(), err)
			}
		}()
	}
	time.Sleep(envMs("READY_DELAY_MS", 0)) // a slow start, for reload tests
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Printf("sd_notify: %v", err)
	}

	log.Printf("got %s, draining", sigName(<-sig))
	d.start(envMs("DRAIN_MAX_MS", 1500), envMs("DRAIN_LINGER_MS", 300))
	select {
	case <-d.done:
	case s := <-sig:
		log.Printf("got %s again, exiting now", sigName(s))
		os.Exit(1)
	}
	log.Print("drained, exiting")
}

// listen returns the sockets passed by launch/systemd or, without any, binds
// $HOST:$PORT.
func listen() []net.Listener {
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":") // read first: Listeners unsets it
	passed := os.Getenv("LISTEN_FDS") != ""
	inherited, err := activation.Listeners()
	if err != nil {
		log.Fatalf("socket activation: %v", err)
	}
	var ls []net.Listener
	for i, l := range inherited {
		fd := 3 + i
		if l == nil {
			log.Printf("fd %d is not a stream socket, ignored", fd)
			continue
		}
		name := ""
		if i < len(names) && names[i] != "" {
			name = " (" + names[i] + ")"
		}
		log.Printf("listening on fd %d%s", fd, name)
		ls = append(ls, l)
	}
	if len(ls) > 0 {
		return ls
	}
	if passed {
		log.Printf("warning: LISTEN_FDS is set but LISTEN_PID is not this process (%d) or no fd is a stream socket; "+
			"is hello started through a wrapper? Binding PORT instead", os.Getpid())
	}
	addr := net.JoinHostPort(cmp.Or(os.Getenv("HOST"), "127.0.0.1"), cmp.Or(os.Getenv("PORT"), "8080"))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	return []net.Listener{l}
}

// drainer tracks connections through http.Server.ConnState and implements
// the drain. Server.Shutdown is not used on purpose: it closes idle
// keep-alive connections at once, racing with requests clients already sent.
type drainer struct {
	listeners []net.Listener
	done      chan struct{} // closed when the process may exit

	mu        sync.Mutex
	conns     map[net.Conn]http.ConnState
	drainAt   time.Time // zero until the drain starts
	closeIdle bool      // set 500 ms into the drain: idle connections get closed
	linger    time.Duration
	exiting   bool
	once      sync.Once
}

func (d *drainer) draining() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.drainAt.IsZero()
}

func (d *drainer) connState(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(d.conns, c)
	default:
		d.conns[c] = s
		if d.closeIdle && s == http.StateIdle {
			c.Close() // a request begun before the drain finished without "Connection: close"
		}
	}
	d.maybeDoneLocked()
}

func (d *drainer) start(maxWait, linger time.Duration) {
	d.mu.Lock()
	d.drainAt, d.linger = time.Now(), linger
	d.mu.Unlock()
	for _, l := range d.listeners {
		l.Close() // our fd only: the master's socket stays open for the other workers
	}
	time.AfterFunc(500*time.Millisecond, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.closeIdle = true
		for c, s := range d.conns {
			if s == http.StateIdle || s == http.StateNew {
				c.Close()
			}
		}
	})
	time.AfterFunc(maxWait, func() {
		d.mu.Lock()
		if n := len(d.conns); n > 0 {
			log.Printf("%d connection(s) still open after %v", n, maxWait)
		}
		d.mu.Unlock()
		d.finish()
	})
	d.mu.Lock()
	d.maybeDoneLocked()
	d.mu.Unlock()
}

// maybeDoneLocked starts the linger once the drain has begun and no
// connection is left; DRAIN_MAX_MS cuts the linger short.
func (d *drainer) maybeDoneLocked() {
	if d.drainAt.IsZero() || len(d.conns) > 0 || d.exiting {
		return
	}
	d.exiting = true
	time.AfterFunc(d.linger, d.finish)
}

func (d *drainer) finish() { d.once.Do(func() { close(d.done) }) }

func sigName(s os.Signal) string {
	if s == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}

func envMs(name string, def int) time.Duration {
	ms, err := strconv.Atoi(os.Getenv(name))
	if err != nil || ms < 0 {
		ms = def
	}
	return time.Duration(ms) * time.Millisecond
}
