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
	cfg     *config.App
	sockets *balancer.Set
	sup     *recovery.Supervisor
}

// runMaster is `launch APPFILE`: it returns an *exitError for every
// non-zero exit.
func runMaster(ctx context.Context, o masterOptions) error {
	override, overrideSet, err := parseInstances(o.instances)
	if err != nil {
		return err
	}
	file, err := config.Load(o.file, config.Options{Env: o.env})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
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
			return usageError("--only %s: no app of that name in %s", o.only, o.file)
		}
	}
	// A program that cannot be found is an app-file error, caught before
	// anything is bound or started (PM2: "Script not found").
	for _, a := range apps {
		if _, err := workers.LookPath(a.Command, a.Dir, appPath(a)); err != nil {
			return usageError("%s:%d: app %q: %v", o.file, a.Line, a.Name, err)
		}
	}
	color := isTerminal(os.Stdout)
	out := workers.NewLog(os.Stdout, color)
	defer out.CloseTimeout(2 * time.Second)
	say := func(format string, args ...any) { out.Printf("launch: "+format, args...) }
	for _, w := range file.Warnings {
		say("warning: %s", w)
	}

	// Subreaper and spawner thread first: nothing may fork before them.
	reaper, err := workers.StartReaper()
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	name := masterName(o)
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
		running = append(running, &app{cfg: a, sockets: set})
	}

	events := make(chan recovery.Event, 256)
	notify := func(ev recovery.Event) {
		switch ev.Kind {
		case recovery.Transition:
			say("%s", ev.Transition)
		case recovery.Note:
			say("%s: %s", ev.App, ev.Msg)
		default:
			select {
			case events <- ev:
			default: // the master is gone or swamped; the log line still shows
				say("%s: %s", ev.App, ev.Msg)
			}
		}
	}
	cpus := runtime.GOMAXPROCS(0)
	for _, a := range running {
		n := a.cfg.Count(cpus)
		if overrideSet {
			c := *a.cfg
			c.Instances = override
			n = c.Count(cpus)
		}
		if a.sockets.Len() > 0 {
			how := "shared socket"
			if a.sockets.PerSlot() {
				how = "a SO_REUSEPORT socket per worker"
			}
			say("%s: %d %s on %s (%s)", a.cfg.Name, n, plural(n, "worker"), a.sockets, how)
		} else {
			say("%s: %d %s (no sockets)", a.cfg.Name, n, plural(n, "worker"))
		}
		var sockets recovery.Sockets
		if a.sockets.Len() > 0 {
			sockets = a.sockets
		}
		a.sup = recovery.Start(recovery.Options{
			App:       a.cfg,
			Instances: n,
			Sockets:   sockets,
			Starter:   spawner,
			Output:    out,
			Environ:   os.Environ(),
			Notify:    notify,
		})
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTTIN, syscall.SIGTTOU)
	defer signal.Stop(sigs)

	m := &master{apps: running, say: say, ready: map[string]bool{}}
	code := m.loop(ctx, sigs, events)
	return exitCode(code)
}

func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code, err: errors.New("")}
}

// master is the foreground loop: signals in, supervisor events in.
type master struct {
	apps      []*app
	say       func(string, ...any)
	ready     map[string]bool
	stopping  bool
	forced    bool
	lost      bool
	reloading bool
}

func (m *master) loop(ctx context.Context, sigs <-chan os.Signal, events <-chan recovery.Event) int {
	allDone := make(chan struct{})
	go func() {
		for _, a := range m.apps {
			<-a.sup.Done()
		}
		close(allDone)
	}()
	reloaded := make(chan error, 1)
	ctxDone := ctx.Done()
	for {
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
			m.signal(sig.(syscall.Signal), reloaded)
		case err := <-reloaded:
			m.reloading = false
			if err != nil {
				m.say("reload failed: %v", err)
			} else {
				m.say("reload done: every worker replaced")
			}
		case ev := <-events:
			m.event(ev)
		case <-ctxDone:
			ctxDone = nil
			m.stop(false)
		}
	}
}

func (m *master) signal(sig syscall.Signal, reloaded chan<- error) {
	switch sig {
	case syscall.SIGINT, syscall.SIGTERM:
		if m.stopping {
			m.say("%s again: stopping at once (SIGKILL to every worker)", workers.SignalName(sig))
			m.stop(true)
			return
		}
		m.say("%s: stopping gracefully (send it again to stop at once)", workers.SignalName(sig))
		m.stop(false)
	case syscall.SIGQUIT:
		m.say("SIGQUIT: stopping at once (SIGKILL to every worker)")
		m.stop(true)
	case syscall.SIGHUP:
		if m.stopping {
			return
		}
		if m.reloading {
			m.say("SIGHUP: a reload is already running; ignored")
			return
		}
		m.reloading = true
		m.say("SIGHUP: replacing every worker, one at a time")
		go func() {
			var errs []error
			for _, a := range m.apps {
				errs = append(errs, a.sup.ReplaceAll())
			}
			reloaded <- errors.Join(errs...)
		}()
	case syscall.SIGTTIN, syscall.SIGTTOU:
		if m.stopping {
			return
		}
		delta := 1
		if sig == syscall.SIGTTOU {
			delta = -1
		}
		for _, a := range m.apps {
			n := a.sup.Size() + delta
			if n < 1 {
				m.say("%s: %s: already at 1 worker", workers.SignalName(sig), a.cfg.Name)
				continue
			}
			m.say("%s: scaling %s to %d", workers.SignalName(sig), a.cfg.Name, n)
			if err := a.sup.Scale(n); err != nil {
				m.say("scale %s: %v", a.cfg.Name, err)
			}
		}
	}
}

func (m *master) stop(force bool) {
	if !m.stopping {
		sdNotify(daemon.SdNotifyStopping)
	}
	m.stopping = true
	m.forced = m.forced || force
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
		if len(m.ready) == len(m.apps) {
			sdNotify(daemon.SdNotifyReady)
		}
	case recovery.AppErrored:
		m.say("%s: ERRORED: %s; other apps keep running", ev.App, ev.Msg)
		if len(m.apps) == 1 {
			m.say("the master keeps running; stop it with Ctrl-C")
		}
		m.ready[ev.App] = true
		if len(m.ready) == len(m.apps) {
			sdNotify(daemon.SdNotifyReady)
		}
	case recovery.Lost:
		m.say("%s: %s; a worker is in an unknown state: stopping everything so the supervisor above restarts launch", ev.App, ev.Msg)
		m.lost = true
		m.stop(false)
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
