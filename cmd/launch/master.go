package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/launch-go/launch/balancer"
	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/recovery"
	"github.com/launch-go/launch/workers"
)

type masterOptions struct {
	file      string
	instances string
	name      string
	env       string
	only      string
}

// parseInstances reads -i: N, "max", 0 (= max) or -N (CPUs minus N).
func parseInstances(s string) (n int, set bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	if s == "max" {
		return 0, true, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil {
		return 0, false, usageError("-i %q: want a number, max, or -N for CPUs minus N", s)
	}
	return n, true, nil
}

// app is one running app in the master.
type app struct {
	// cfgp is the app's settings as last applied (start, or a reload that
	// succeeded); read from the control server and the monitor too.
	cfgp    atomic.Pointer[config.App]
	sockets *balancer.Set
	sup     *recovery.Supervisor
	// scaled is the count `launch scale` set, 0 for none; it holds until a
	// reloaded file changes the app's instances.
	scaled int
	// removing: a reload dropped the app from the file; it is stopping.
	removing bool
	// router is the app's proxy in balance: proxy.
	router *balancer.Router
}

func newApp(cfg *config.App, set *balancer.Set) *app {
	a := &app{sockets: set}
	a.cfgp.Store(cfg)
	return a
}

// cfg returns the app's settings as last applied.
func (a *app) cfg() *config.App { return a.cfgp.Load() }

func (a *app) setCfg(c *config.App) { a.cfgp.Store(c) }

// runMaster is `launch APPFILE`: it returns an *exitError for every
// non-zero exit.
func runMaster(ctx context.Context, o masterOptions) error {
	override, overrideSet, err := parseInstances(o.instances)
	if err != nil {
		return err
	}
	// Before the reaper starts, os/exec may run node for an ecosystem file.
	apps, file, err := loadApps(o, nil)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	color := isTerminal(os.Stdout)
	out := workers.NewLog(os.Stdout, color)
	defer out.CloseTimeout(2 * time.Second)
	say := func(format string, args ...any) { out.Printf("launch: "+format, args...) }
	for _, w := range file.Warnings {
		say("warning: %s", w)
	}

	// The control directory and this master's name are checked before
	// anything starts: a second master with the same name is a usage error.
	name := masterName(o)
	if err := validName(name); err != nil {
		if o.name == "" {
			err = fmt.Errorf("%w (the app file's name %q cannot name the master: give --name)", err, name)
		}
		return &exitError{code: exitUsage, err: err}
	}
	home, err := launchHome()
	if err == nil {
		err = ensureHome(home)
	}
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	lock, err := lockMaster(home, name)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	defer lock.release()

	// Subreaper and spawner thread first: nothing may fork before them.
	reaper, err := workers.StartReaper()
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	say("master %s (pid %d) from %s", name, os.Getpid(), o.file)
	runDir, err := os.MkdirTemp("", "launch-"+name+"-")
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("runtime directory: %w", err)}
	}
	defer os.RemoveAll(runDir)
	spawner := workers.NewSpawner(reaper, "/proc/self/exe", runDir)
	defer spawner.Close()

	// Bind every address before any worker starts: a port in use is a
	// usage error and nothing runs.
	reg := balancer.NewRegistry()
	defer reg.Close()
	running := make([]*app, 0, len(apps))
	for _, a := range apps {
		set, err := reg.Bind(a)
		if err != nil {
			return &exitError{code: exitUsage, err: bindHelp(o.file, a, err)}
		}
		running = append(running, newApp(a, set))
	}

	m := &master{
		opts: o, name: name, say: say, out: out, reg: reg, spawner: spawner, runDir: runDir,
		cpus: runtime.GOMAXPROCS(0), override: override, overrideSet: overrideSet,
		ready: map[string]bool{}, cmds: make(chan func()), loopDone: make(chan struct{}),
		events: make(chan recovery.Event, 256), reloads: make(chan reloadRequest),
		settings: settingsOf(file),
	}
	m.startLogs(out)
	ctl, err := m.serveControl(home, name)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer ctl.close()
	stopMonitor, err := m.startMonitor()
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", o.file, err)}
	}
	defer stopMonitor()
	defer m.logs.close()
	for i, a := range running {
		if err := m.startApp(a); err != nil {
			for _, b := range running[:i] {
				b.sup.Stop()
				<-b.sup.Done()
				if b.router != nil {
					b.router.Close()
				}
			}
			return &exitError{code: exitFailure, err: err}
		}
	}
	m.apps = running
	defer m.closeRouters()

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	defer signal.Stop(sigs)

	code := m.loop(ctx, sigs)
	return exitCode(code)
}

// settings are the app file's top-level keys for the master.
type settings struct {
	metrics        string        // metrics: address of /metrics, /healthz, /readyz
	shutdownDelay  time.Duration // shutdown_delay
	sampleInterval time.Duration // sample_interval
}

func settingsOf(f *config.File) settings {
	s := settings{metrics: f.Metrics, shutdownDelay: f.ShutdownDelay, sampleInterval: f.SampleInterval}
	if s.sampleInterval <= 0 {
		s.sampleInterval = time.Second
	}
	return s
}

// loadApps reads the app file and checks that every program exists; it is
// used at start and by every reload, so a reload refuses what a start
// would refuse.
//
// eval, when not nil, evaluates an ecosystem.config.js (a running master
// passes one that starts node through its spawner).
func loadApps(o masterOptions, eval func(string) ([]byte, error)) ([]*config.App, *config.File, error) {
	file, err := config.Load(o.file, config.Options{Env: o.env, NodeEval: eval})
	if err != nil {
		return nil, nil, err
	}
	apps := file.Apps
	if o.only != "" {
		apps = nil
		for _, a := range file.Apps {
			if a.Name == o.only {
				apps = append(apps, a)
			}
		}
		if len(apps) == 0 {
			return nil, nil, fmt.Errorf("--only %s: no app of that name in %s", o.only, o.file)
		}
	}
	// A program that cannot be found is an app-file error, caught before
	// anything is bound or started (PM2: "Script not found").
	for _, a := range apps {
		if _, err := workers.LookPath(a.Command, a.Dir, appPath(a)); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: app %q: %w", o.file, a.Line, a.Name, err)
		}
	}
	return apps, file, nil
}

func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code, err: errors.New("")}
}

// master is the foreground loop. One goroutine (loop) owns apps and the
// stop state; the control server and the monitor reach them through exec.
type master struct {
	opts        masterOptions
	name        string
	say         func(string, ...any)
	out         *workers.Log
	reg         *balancer.Registry
	spawner     *workers.Spawner
	runDir      string
	cpus        int
	override    int
	overrideSet bool
	settings    settings

	// Owned by the loop goroutine:
	apps     []*app
	ready    map[string]bool
	stopping bool
	forced   bool
	lost     bool
	lastTerm time.Time
	// sentReady: READY=1 went out for the start.
	sentReady bool

	cmds     chan func()
	loopDone chan struct{}
	events   chan recovery.Event
	reloads  chan reloadRequest
	// reloadMu is held by the reload that runs; another one is refused.
	reloadMu sync.Mutex
	// hupMu guards hupRunning (a SIGHUP's reload runs) and hupQueued (a
	// SIGHUP came meanwhile: one more reload when it ends).
	hupMu                 sync.Mutex
	hupRunning, hupQueued bool

	logs    *logStore
	monitor *monitor
}

// errStopping answers control requests that reach a master on its way out.
var errStopping = errors.New("the master is stopping")

// runNode is a config.Runner that starts node through the spawner, so the
// reaper, which owns every wait, routes its exit status (os/exec's Wait
// would race the reaper for it).
func (m *master) runNode(ctx context.Context, program string, args []string, dir string, out *os.File) (string, error) {
	p, err := m.spawner.Start(workers.Spec{Name: "ecosystem", Path: program, Args: args, Dir: dir,
		Env: os.Environ(), Files: []*os.File{out}, FileNames: []string{"result"}})
	if err != nil {
		return "", err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Signal(syscall.SIGKILL)
		<-p.Done()
	}
	select {
	case <-p.OutputDone():
	case <-time.After(time.Second):
	}
	if st := p.Status(); !st.Success() {
		return strings.Join(p.Tail(), "\n"), errors.New(st.String())
	}
	return "", nil
}

// exec runs fn on the loop goroutine and waits for it.
func (m *master) exec(fn func()) error {
	done := make(chan struct{})
	select {
	case m.cmds <- func() { defer close(done); fn() }:
		<-done
		return nil
	case <-m.loopDone:
		return errStopping
	}
}

// notify receives supervisor events (on supervisor goroutines).
func (m *master) notify(ev recovery.Event) {
	switch ev.Kind {
	case recovery.Transition:
		m.say("%s", ev.Transition)
	case recovery.Note:
		m.say("%s: %s", ev.App, ev.Msg)
	default:
		select {
		case m.events <- ev:
		default: // the master is gone or swamped; the log line still shows
			m.say("%s: %s", ev.App, ev.Msg)
		}
	}
}

// count is the number of workers app a runs now.
func (m *master) count(a *app) int { return m.countFor(a.cfg(), a.scaled) }

// countFor is count for settings cfg and a `launch scale` count (0: none):
// the scale count wins until the file's instances changes, then -i, then
// the file.
func (m *master) countFor(cfg *config.App, scaled int) int {
	if scaled > 0 {
		return scaled
	}
	if m.overrideSet {
		c := *cfg
		c.Instances = m.override
		return c.Count(m.cpus)
	}
	return cfg.Count(m.cpus)
}

// startApp starts a's supervisor (loop goroutine), and in proxy mode its
// proxy first.
func (m *master) startApp(a *app) error {
	m.logs.openFiles(a.cfg(), m.say)
	n := m.count(a)
	var router recovery.Router
	if a.cfg().Balance == config.BalanceProxy {
		name := a.cfg().Name
		r, err := balancer.NewRouter(a.cfg(), a.sockets, m.runDir, func(f string, args ...any) { m.say(name+": proxy: "+f, args...) })
		if err != nil {
			return err
		}
		a.router, router = r, r
		pc := a.cfg().Proxy
		m.say("%s: %d %s behind a %s proxy on %s (%s; workers on private %s addresses)", a.cfg().Name, n, plural(n, "worker"), pc.Protocol, a.sockets, pc.Strategy, pc.To)
	} else if a.sockets.Len() > 0 {
		how := "shared socket"
		if a.sockets.PerSlot() {
			how = "a SO_REUSEPORT socket per worker"
		}
		m.say("%s: %d %s on %s (%s)", a.cfg().Name, n, plural(n, "worker"), a.sockets, how)
	} else {
		m.say("%s: %d %s (no sockets)", a.cfg().Name, n, plural(n, "worker"))
	}
	var sockets recovery.Sockets
	if a.sockets.Len() > 0 && router == nil {
		sockets = a.sockets
	}
	a.sup = recovery.Start(recovery.Options{
		App:       a.cfg(),
		Instances: n,
		Sockets:   sockets,
		Router:    router,
		Starter:   m.spawner,
		Output:    m.out,
		Environ:   os.Environ(),
		Notify:    m.notify,
	})
	return nil
}

// closeRouters stops every proxy (the workers are gone by then).
func (m *master) closeRouters() {
	for _, a := range m.apps {
		if a.router != nil {
			a.router.Close()
		}
	}
}

// findApp returns the running app called name (loop goroutine).
func (m *master) findApp(name string) *app {
	for _, a := range m.apps {
		if a.cfg().Name == name && !a.removing {
			return a
		}
	}
	return nil
}

func (m *master) loop(ctx context.Context, sigs <-chan os.Signal) int {
	defer close(m.loopDone)
	var allDone chan struct{}
	ctxDone := ctx.Done()
	for {
		if m.stopping && allDone == nil {
			allDone = make(chan struct{})
			sups := make([]*recovery.Supervisor, 0, len(m.apps))
			for _, a := range m.apps {
				sups = append(sups, a.sup)
			}
			go func(done chan struct{}) {
				for _, s := range sups {
					<-s.Done()
				}
				close(done)
			}(allDone)
		}
		select {
		case <-allDone:
			m.say("all workers stopped")
			switch {
			case m.lost:
				return exitFailure
			case m.forced:
				return exitFailure
			}
			return exitOK
		case sig := <-sigs:
			m.signal(sig.(syscall.Signal))
		case fn := <-m.cmds:
			fn()
		case ev := <-m.events:
			m.event(ev)
		case <-ctxDone:
			ctxDone = nil
			m.stop(false)
		}
	}
}

// termRepeat: a second SIGTERM/SIGINT this soon after the first is the
// same request (timeout(1) and some supervisors signal the process and
// then its group), not "stop at once".
const termRepeat = 200 * time.Millisecond

func (m *master) signal(sig syscall.Signal) {
	switch sig {
	case syscall.SIGINT, syscall.SIGTERM:
		if m.stopping {
			if time.Since(m.lastTerm) < termRepeat {
				return
			}
			m.say("%s again: stopping at once (SIGKILL to every worker)", workers.SignalName(sig))
			m.stop(true)
			return
		}
		m.lastTerm = time.Now()
		m.say("%s: stopping gracefully (send it again to stop at once)", workers.SignalName(sig))
		m.stopGracefully()
	case syscall.SIGQUIT:
		m.say("SIGQUIT: stopping at once (SIGKILL to every worker)")
		m.stop(true)
	case syscall.SIGPIPE:
		// A control client that hung up raises SIGPIPE too; only a broken
		// stdout (the reader of the master's log is gone) stops the master,
		// once (every later write to it raises SIGPIPE again).
		if !m.forced && brokenPipe(1) {
			// Say it where it may still be read, and exit 1: the output
			// was lost, so this is not a clean stop.
			fmt.Fprintf(os.Stderr, "launch: the reader of the master's output went away (broken pipe): stopping every worker\n")
			m.forced = true
			m.stop(false)
		}
	case syscall.SIGHUP:
		if m.stopping {
			return
		}
		go m.hup()
	case syscall.SIGTTIN, syscall.SIGTTOU:
		if m.stopping {
			return
		}
		delta := 1
		if sig == syscall.SIGTTOU {
			delta = -1
		}
		for _, a := range m.apps {
			if a.removing {
				continue
			}
			from, n, err := a.sup.ScaleWith(func(cur int) (int, error) {
				if cur+delta < 1 {
					return cur, errAtOne
				}
				return cur + delta, nil
			})
			switch {
			case errors.Is(err, errAtOne):
				m.say("%s: %s: already at 1 worker", workers.SignalName(sig), a.cfg().Name)
			case err != nil:
				m.say("scale %s: %v", a.cfg().Name, err)
			default:
				m.say("%s: scaled %s from %d to %d", workers.SignalName(sig), a.cfg().Name, from, n)
				a.scaled = n
			}
		}
	}
}

// errAtOne: SIGTTOU on an app with one worker.
var errAtOne = errors.New("already at 1 worker")

// brokenPipe reports whether fd is a pipe or socket whose reader is gone.
func brokenPipe(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0
}

// stopGracefully is SIGTERM's stop: with shutdown_delay, /readyz fails
// first and the workers keep serving for that long (Kubernetes keeps
// routing to a pod for a while after it is told to stop), then they drain.
func (m *master) stopGracefully() {
	if d := m.settings.shutdownDelay; d > 0 && !m.stopping {
		m.stopping = true
		m.monitor.setDraining()
		sdNotify(daemon.SdNotifyStopping)
		m.say("shutdown_delay: /readyz fails now; workers keep serving for %s, then stop", d)
		time.AfterFunc(d, func() { m.exec(func() { m.stopApps(false) }) })
		return
	}
	m.stop(false)
}

func (m *master) stop(force bool) {
	if !m.stopping {
		sdNotify(daemon.SdNotifyStopping)
	}
	m.stopping = true
	m.forced = m.forced || force
	m.monitor.setDraining()
	m.stopApps(force)
}

func (m *master) stopApps(force bool) {
	for _, a := range m.apps {
		if force {
			a.sup.Kill()
		} else {
			a.sup.Stop()
		}
	}
}

func (m *master) event(ev recovery.Event) {
	switch ev.Kind {
	case recovery.AppReady:
		m.ready[ev.App] = true
		m.say("%s: ready (%s)", ev.App, ev.Msg)
		m.checkReady()
	case recovery.AppErrored:
		m.say("%s: ERRORED: %s; other apps keep running", ev.App, ev.Msg)
		if len(m.apps) == 1 {
			m.say("the master keeps running; fix the app, then `launch restart %s` (or Ctrl-C)", ev.App)
		}
		m.ready[ev.App] = true
		m.checkReady()
	case recovery.Lost:
		m.say("%s: %s; a worker is in an unknown state: stopping everything so the supervisor above restarts launch", ev.App, ev.Msg)
		m.lost = true
		m.stop(false)
	}
}

// checkReady sends READY=1 once every app has been ready (or settled).
func (m *master) checkReady() {
	for _, a := range m.apps {
		if !m.ready[a.cfg().Name] {
			return
		}
	}
	if !m.sentReady {
		m.sentReady = true
		sdNotify(daemon.SdNotifyReady)
	}
}

// masterName is --name, or the app file's base name without extension
// ("app" for app.yaml, "ecosystem" for ecosystem.config.js). It names the
// master in its log and its runtime directory (and, with the control
// plane, its control socket).
func masterName(o masterOptions) string {
	if o.name != "" {
		return o.name
	}
	base := filepath.Base(o.file)
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	return base
}

// appPath is the PATH the app's workers will see.
func appPath(a *config.App) string {
	if p, ok := a.Env["PATH"]; ok {
		return p
	}
	return os.Getenv("PATH")
}

// sdNotify tells systemd (when NOTIFY_SOCKET is set for the master).
func sdNotify(state string) {
	_, _ = daemon.SdNotify(false, state)
}

// bindHelp turns a bind error into one that says what to do.
func bindHelp(file string, a *config.App, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		where := ""
		for _, l := range a.Listen {
			if strings.Contains(err.Error(), l.Address) && l.Line > 0 {
				where = fmt.Sprintf("%s:%d: ", file, l.Line)
			}
		}
		return fmt.Errorf("%sapp %s: %w\n  another process listens there (see `ss -ltnp`); stop it or change `listen` in %s", where, a.Name, err, file)
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("app %s: %w\n  ports below 1024 need root or CAP_NET_BIND_SERVICE; run launch as root with `uid:` set for the app", a.Name, err)
	}
	return fmt.Errorf("app %s: %w", a.Name, err)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// isTerminal reports whether f is a terminal and colour is wanted.
func isTerminal(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
