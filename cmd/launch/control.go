package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/launch-go/launch/balancer/proxy"
	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/recovery"
	"github.com/launch-go/launch/workers"
)

// The control plane (design §6): HTTP+JSON on a unix socket, mode 0600, in
// the control directory, one per master. Only the master's own uid and
// root may use it (SO_PEERCRED). Requests:
//
//	GET  /v1/ls                         []workerJSON
//	GET  /v1/describe?app=NAME          describeJSON
//	POST /v1/stop|start|restart?app=NAME|all
//	POST /v1/scale?app=NAME&n=N|+N|-N
//	POST /v1/signal?app=NAME|all&sig=SIG
//	GET  /v1/logs?app=NAME|all&lines=N&follow=1     NDJSON log lines
//	POST /v1/reload?app=NAME|all&parallel=N         NDJSON progress, then the result
//
// Errors are {"error": "..."} with a 4xx/5xx status.

type controlServer struct {
	srv  *http.Server
	ln   net.Listener
	path string
	wg   sync.WaitGroup
}

type credKey struct{}

// serveControl listens on DIR/NAME.sock. The caller holds NAME.lock, so a
// socket file already there belongs to a dead master and is replaced.
func (m *master) serveControl(dir, name string) (*controlServer, error) {
	path := filepath.Join(dir, name+".sock")
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ls", m.handleLs)
	mux.HandleFunc("GET /v1/describe", m.handleDescribe)
	mux.HandleFunc("POST /v1/stop", m.handleAppOp("stop"))
	mux.HandleFunc("POST /v1/start", m.handleAppOp("start"))
	mux.HandleFunc("POST /v1/restart", m.handleAppOp("restart"))
	mux.HandleFunc("POST /v1/signal", m.handleAppOp("signal"))
	mux.HandleFunc("POST /v1/scale", m.handleScale)
	mux.HandleFunc("GET /v1/logs", m.handleLogs)
	mux.HandleFunc("POST /v1/reload", m.handleReload)
	c := &controlServer{ln: ln, path: path}
	c.srv = &http.Server{
		Handler:           peerCheck(mux),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
		ConnContext: func(ctx context.Context, conn net.Conn) context.Context {
			return context.WithValue(ctx, credKey{}, peerCred(conn))
		},
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.srv.Serve(ln)
	}()
	m.say("control socket %s", path)
	return c, nil
}

// close stops the server; streams in progress (logs -f) end.
func (c *controlServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.srv.Shutdown(ctx); err != nil {
		c.srv.Close()
	}
	c.wg.Wait()
}

// peerCred reads the connecting process's credentials; nil if unknown.
func peerCred(conn net.Conn) *unix.Ucred {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return cred
}

// peerCheck refuses every uid but the master's own and root, whatever the
// socket's file permissions say.
func peerCheck(next http.Handler) http.Handler {
	self := uint32(os.Geteuid())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(credKey{}).(*unix.Ucred)
		if cred == nil {
			httpError(w, http.StatusForbidden, "cannot read the peer's credentials (SO_PEERCRED); refused")
			return
		}
		if cred.Uid != self && cred.Uid != 0 {
			httpError(w, http.StatusForbidden, fmt.Sprintf("permission denied: uid %d may not control this master (it runs as uid %d; only that uid and root may)", cred.Uid, self))
			return
		}
		// A request acts only once it has arrived whole: a client that
		// hangs up before its body is complete has asked for nothing.
		if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)); err != nil {
			httpError(w, http.StatusBadRequest, "incomplete request: "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// workerJSON is one row of `launch ls -o json`. Scripts rely on these names.
type workerJSON struct {
	App         string    `json:"app"`
	Instance    int       `json:"instance"`
	PID         int       `json:"pid"`
	State       string    `json:"state"`
	Restarts    int       `json:"restarts"`
	UptimeMS    int64     `json:"uptime_ms"`
	CPUPercent  float64   `json:"cpu_percent"`
	MemoryBytes int64     `json:"memory_bytes"`
	MemoryKind  string    `json:"memory_kind,omitempty"`
	Incoming    bool      `json:"incoming,omitempty"`
	LastExit    string    `json:"last_exit,omitempty"`
	Since       time.Time `json:"since"`
	// Requests (proxy mode) is how many requests (http) or connections
	// (tcp) the worker has taken from the proxy.
	Requests *uint64 `json:"requests,omitempty"`
}

// snapshotApps returns the running apps (loop goroutine copy).
func (m *master) snapshotApps() ([]*app, error) {
	var apps []*app
	err := m.exec(func() {
		for _, a := range m.apps {
			if !a.removing {
				apps = append(apps, a)
			}
		}
	})
	return apps, err
}

// listWorkers builds `ls` rows for apps matching name ("" or "all": all).
func (m *master) listWorkers(name string) ([]workerJSON, error) {
	apps, err := m.snapshotApps()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := []workerJSON{}
	for _, a := range apps {
		if name != "" && name != "all" && a.cfg().Name != name {
			continue
		}
		var stats map[int]proxy.BackendStats
		if a.router != nil {
			stats = a.router.Stats()
		}
		for _, wi := range a.sup.Workers() {
			r := workerJSON{App: wi.App, Instance: wi.Instance, PID: wi.PID, State: wi.State.String(),
				Restarts: wi.Restarts, Incoming: wi.Incoming, LastExit: wi.LastExit, Since: wi.Since}
			if wi.PID != 0 && !wi.Started.IsZero() {
				r.UptimeMS = now.Sub(wi.Started).Milliseconds()
			}
			if u, ok := m.monitor.usage(wi.PID); ok {
				r.CPUPercent, r.MemoryBytes, r.MemoryKind = u.CPUPercent, u.Memory, u.MemoryKind
			}
			if st, ok := stats[wi.PID]; ok && wi.PID != 0 {
				n := st.Served
				r.Requests = &n
			} else if stats != nil {
				var zero uint64
				r.Requests = &zero
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func (m *master) handleLs(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("app")
	if name != "" && name != "all" {
		if _, err := m.targetApps(name); err != nil {
			httpError(w, http.StatusNotFound, err.Error())
			return
		}
	}
	rows, err := m.listWorkers(name)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, rows)
}

// describeJSON is `launch describe NAME -o json`.
type describeJSON struct {
	App       string         `json:"app"`
	Script    string         `json:"script"`
	Command   []string       `json:"command"`
	Dir       string         `json:"cwd"`
	Instances int            `json:"instances"`
	Balance   string         `json:"balance"`
	Listen    []string       `json:"listen"`
	Ready     string         `json:"ready"`
	Stopped   bool           `json:"stopped_by_request"`
	MaxMemory int64          `json:"max_memory_restart,omitempty"`
	Workers   []workerJSON   `json:"workers"`
	Slots     []slotJSON     `json:"slots"`
	Restarts  map[string]int `json:"restarts_by_reason"`
}

type slotJSON struct {
	Instance int                      `json:"instance"`
	Restarts int                      `json:"restarts"`
	Unstable int                      `json:"unstable"`
	LastExit *exitJSON                `json:"last_exit,omitempty"`
	Log      []recovery.RestartRecord `json:"restart_log"`
}

type exitJSON struct {
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	Text   string    `json:"text"`
	At     time.Time `json:"at"`
}

func (m *master) describe(name string) (*describeJSON, error) {
	var a *app
	if err := m.exec(func() { a = m.findApp(name) }); err != nil {
		return nil, err
	}
	if a == nil {
		apps, _ := m.snapshotApps()
		var names []string
		for _, x := range apps {
			names = append(names, x.cfg().Name)
		}
		return nil, fmt.Errorf("no app named %q (apps: %s)", name, strings.Join(names, ", "))
	}
	cfg := a.sup.App()
	d := &describeJSON{App: cfg.Name, Script: cfg.Script, Command: append([]string{cfg.Command}, cfg.Args...),
		Dir: cfg.Dir, Instances: a.sup.Size(), Balance: string(cfg.Balance), Ready: readyString(cfg),
		Stopped: a.sup.Halted(), MaxMemory: cfg.MaxMemoryRestart, Restarts: map[string]int{}}
	for _, l := range cfg.Listen {
		d.Listen = append(d.Listen, l.String())
	}
	d.Workers, _ = m.listWorkers(name)
	for _, si := range a.sup.Slots() {
		sj := slotJSON{Instance: si.Instance, Restarts: si.Restarts, Unstable: si.Unstable, Log: si.Log}
		if e := si.LastExit; e != nil {
			sj.LastExit = &exitJSON{Code: e.Code, Text: e.String(), At: e.At}
			if e.Signal != 0 {
				sj.LastExit.Signal = workers.SignalName(e.Signal)
			}
		}
		if sj.Log == nil {
			sj.Log = []recovery.RestartRecord{}
		}
		for reason, n := range si.ByReason {
			d.Restarts[reason] += n
		}
		d.Slots = append(d.Slots, sj)
	}
	return d, nil
}

// readyString writes a's readiness rule as the app file does.
func readyString(a *config.App) string {
	switch a.Ready.Kind {
	case config.ReadyDelay:
		return "delay:" + a.Ready.Delay.String()
	case config.ReadyHTTP:
		return "http:" + a.Ready.Path
	}
	return string(a.Ready.Kind)
}

func (m *master) handleDescribe(w http.ResponseWriter, r *http.Request) {
	d, err := m.describe(r.URL.Query().Get("app"))
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, d)
}

// opResult is the answer of stop/start/restart/signal/scale.
type opResult struct {
	Apps    []string `json:"apps"`
	Workers int      `json:"workers"`
	Msg     string   `json:"msg"`
}

// targetApps resolves NAME|all.
func (m *master) targetApps(name string) ([]*app, error) {
	apps, err := m.snapshotApps()
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("which app? give a name, or all")
	}
	if name == "all" {
		return apps, nil
	}
	var names []string
	for _, a := range apps {
		if a.cfg().Name == name {
			return []*app{a}, nil
		}
		names = append(names, a.cfg().Name)
	}
	return nil, fmt.Errorf("no app named %q (apps: %s)", name, strings.Join(names, ", "))
}

func (m *master) handleAppOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		apps, err := m.targetApps(q.Get("app"))
		if err != nil {
			httpError(w, http.StatusNotFound, err.Error())
			return
		}
		var sig syscall.Signal
		if op == "signal" {
			sig, err = parseSignal(q.Get("sig"))
			if err != nil {
				httpError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		res := opResult{}
		var waits []<-chan struct{}
		for _, a := range apps {
			var n int
			var err error
			switch op {
			case "stop":
				var done <-chan struct{}
				done, err = a.sup.Halt()
				if done != nil {
					waits = append(waits, done)
				}
				n = a.sup.Size()
			case "start":
				n, err = a.sup.Resume()
			case "restart":
				n, err = a.sup.Restart()
			case "signal":
				n, err = a.sup.Signal(sig)
			}
			if err != nil {
				httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s %s: %v", op, a.cfg().Name, err))
				return
			}
			m.say("%s %s (%d %s) by request", op, a.cfg().Name, n, plural(n, "worker"))
			res.Apps = append(res.Apps, a.cfg().Name)
			res.Workers += n
		}
		// stop answers when the workers are gone, like `pm2 stop`, or
		// after a bound, saying so.
		var bound time.Duration
		for _, a := range apps {
			bound = max(bound, 2*a.cfg().KillTimeout+5*time.Second)
		}
		timeout := time.After(bound)
		for _, done := range waits {
			select {
			case <-done:
			case <-timeout:
				res.Msg = fmt.Sprintf("stop of %s asked; some workers are still stopping after %s (see `launch ls`)", strings.Join(res.Apps, ", "), bound)
				writeJSON(w, res)
				return
			case <-r.Context().Done():
				return
			}
		}
		switch op {
		case "stop":
			res.Msg = fmt.Sprintf("stopped %s", strings.Join(res.Apps, ", "))
		case "start":
			res.Msg = fmt.Sprintf("started %d %s of %s", res.Workers, plural(res.Workers, "worker"), strings.Join(res.Apps, ", "))
		case "restart":
			res.Msg = fmt.Sprintf("restarting %d %s of %s", res.Workers, plural(res.Workers, "worker"), strings.Join(res.Apps, ", "))
		case "signal":
			res.Msg = fmt.Sprintf("sent %s to %d %s of %s", workers.SignalName(sig), res.Workers, plural(res.Workers, "worker"), strings.Join(res.Apps, ", "))
		}
		writeJSON(w, res)
	}
}

// parseSignal reads "TERM", "SIGTERM", "sigterm" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (try TERM, INT, HUP, USR1, USR2, KILL or a number)", s)
}

func (m *master) handleScale(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	apps, err := m.targetApps(q.Get("app"))
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	spec := q.Get("n")
	res := opResult{}
	// Check the count against every app first, so `scale all -1` changes
	// nothing when it cannot apply to one of them.
	for _, a := range apps {
		if _, err := scaleTarget(a.sup.Size(), spec); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("%s: %v (nothing changed)", a.cfg().Name, err))
			return
		}
	}
	for _, a := range apps {
		var countErr error
		cur, n, err := a.sup.ScaleWith(func(cur int) (int, error) {
			n, err := scaleTarget(cur, spec)
			countErr = err
			return n, err
		})
		if err != nil {
			code := http.StatusServiceUnavailable
			if countErr != nil {
				code = http.StatusBadRequest
			}
			httpError(w, code, fmt.Sprintf("%s: %v", a.cfg().Name, err))
			return
		}
		m.exec(func() { a.scaled = n })
		m.say("scale %s: %d → %d by request", a.cfg().Name, cur, n)
		res.Apps = append(res.Apps, a.cfg().Name)
		res.Workers += n
		res.Msg = fmt.Sprintf("%s: %d → %d %s", a.cfg().Name, cur, n, plural(n, "instance"))
	}
	writeJSON(w, res)
}

// scaleTarget reads N, +N or -N against the current count.
func scaleTarget(cur int, spec string) (int, error) {
	n, err := strconv.Atoi(spec)
	if err != nil {
		return 0, fmt.Errorf("scale: %q is not a count: want N, +N or -N", spec)
	}
	if strings.HasPrefix(spec, "+") || strings.HasPrefix(spec, "-") {
		n = cur + n
	}
	if n < 1 {
		return 0, fmt.Errorf("scale: %s from %d leaves %d; at least 1 instance (use `launch stop` to stop the app)", spec, cur, n)
	}
	if n > 1024 {
		return 0, fmt.Errorf("scale: %d instances is more than 1024; is that a typo?", n)
	}
	return n, nil
}

func (m *master) handleReload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target := q.Get("app")
	if target == "" {
		target = "all"
	}
	parallel := 1
	if p := q.Get("parallel"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("--parallel %q: want a number ≥ 1", p))
			return
		}
		parallel = n
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	// Progress comes from supervisor goroutines and must not block them:
	// a bounded queue, drained by this handler.
	evs := make(chan reloadEvent, 1024)
	done := make(chan reloadResult, 1)
	go func() {
		done <- m.reload(reloadRequest{target: target, parallel: parallel, progress: func(ev reloadEvent) {
			select {
			case evs <- ev:
			default:
			}
		}})
	}()
	enc := json.NewEncoder(w)
	for {
		select {
		case ev := <-evs:
			enc.Encode(map[string]any{"event": ev})
			if flusher != nil {
				flusher.Flush()
			}
		case res := <-done:
			for len(evs) > 0 {
				enc.Encode(map[string]any{"event": <-evs})
			}
			enc.Encode(map[string]any{"result": res})
			return
		}
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
