package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/launch-go/launch/balancer"
	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/recovery"
)

// reloadRequest is `launch reload TARGET` or SIGHUP (target "all").
type reloadRequest struct {
	target   string // an app's name, or "all"
	parallel int    // slots replaced at once per app (≥ 1)
	// progress hears every step; it runs on supervisor goroutines and
	// must not block. nil: the master's log only.
	progress func(reloadEvent)
}

// reloadEvent is one line of a reload's progress.
type reloadEvent struct {
	App      string `json:"app"`
	Instance int    `json:"instance"`
	// Phase is a recovery.Phase (starting, ready, done, failed) for a slot,
	// or added, removed, scaled for the app (Instance -1).
	Phase  string `json:"phase"`
	PID    int    `json:"pid,omitempty"`
	OldPID int    `json:"old_pid,omitempty"`
	Msg    string `json:"msg,omitempty"`
}

// reloadResult is what `launch reload -o json` prints at the end.
type reloadResult struct {
	OK         bool              `json:"ok"`
	Error      string            `json:"error,omitempty"`
	Busy       bool              `json:"busy,omitempty"`
	Apps       []appReloadResult `json:"apps"`
	DurationMS int64             `json:"duration_ms"`
}

// appReloadResult is one app's part of a reload.
type appReloadResult struct {
	App string `json:"app"`
	// Action: reloaded, added, removed, failed, skipped (not reached
	// after an earlier app failed).
	Action   string   `json:"action"`
	Changed  []string `json:"changed,omitempty"`
	Replaced int      `json:"replaced"`
	Error    string   `json:"error,omitempty"`
}

// hup runs the reload a SIGHUP asks for: re-read the file, reload every
// app. Unlike `launch reload`, a SIGHUP that comes while a reload runs is
// queued, not refused: systemd's Type=notify-reload sends one and waits
// for RELOADING=1 (sent at once) and READY=1, and a deploy script that
// sends two wants the file it wrote last to be read. SIGHUPs queued while
// one reload runs make one more reload.
func (m *master) hup() {
	m.hupMu.Lock()
	if m.hupRunning {
		m.hupQueued = true
		m.hupMu.Unlock()
		m.say("SIGHUP: a reload is running; queued: the file is read again when it ends")
		sdNotifyReloading()
		return
	}
	m.hupRunning = true
	m.hupMu.Unlock()
	m.say("SIGHUP: re-reading %s and reloading every app", m.opts.file)
	for {
		res := m.reload(reloadRequest{target: "all", parallel: 1})
		if res.Busy {
			// A `launch reload` runs: wait for it, then go.
			m.reloadMu.Lock()
			m.reloadMu.Unlock()
			if m.isStopping() {
				m.hupMu.Lock()
				break
			}
			continue
		}
		if res.Error != "" {
			m.say("reload failed: %s", res.Error)
		}
		stopping := m.isStopping()
		m.hupMu.Lock()
		if !m.hupQueued || stopping {
			break // a queued SIGHUP is moot once the master stops
		}
		m.hupQueued = false
		m.hupMu.Unlock()
		m.say("SIGHUP (queued): re-reading %s and reloading every app", m.opts.file)
	}
	m.hupRunning, m.hupQueued = false, false // hupMu is held here
	m.hupMu.Unlock()
}

// isStopping reports whether the master is stopping (or its loop is gone).
func (m *master) isStopping() bool {
	var stopping bool
	return m.exec(func() { stopping = m.stopping }) != nil || stopping
}

// errReloadBusy refuses a reload asked while another one runs.
var errReloadBusy = errors.New("a reload is already running; this one was refused (not queued): run it again when the first has finished")

// reloadPlan is one existing app to roll.
type reloadPlan struct {
	a       *app
	cfg     *config.App
	changed []string
	// rescale: the file changed instances, which ends a `launch scale`.
	rescale bool
	// relisten: the app's new addresses, bound; nil when listen is unchanged.
	relisten *balancer.Relisten
}

// reload re-reads the app file and applies it (design §1, §5): an invalid
// file changes nothing; new apps start; removed apps stop; every targeted
// app's workers are replaced one slot at a time with the new settings and
// whatever binary is on disk now; a changed instances scales. It stops at
// the first app whose roll fails: that app's old workers keep serving and
// the apps after it are not touched.
func (m *master) reload(req reloadRequest) reloadResult {
	start := time.Now()
	if !m.reloadMu.TryLock() {
		return reloadResult{Error: errReloadBusy.Error(), Busy: true}
	}
	defer m.reloadMu.Unlock()
	if req.parallel < 1 {
		req.parallel = 1
	}
	emit := func(ev reloadEvent) {
		if req.progress != nil {
			req.progress(ev)
		}
	}
	// systemd hears RELOADING=1 now and READY=1 when the reload is over,
	// unless the master is stopping or has not been ready yet.
	sdNotifyReloading()
	defer func() {
		var ready bool
		if m.exec(func() { ready = m.sentReady && !m.stopping }) == nil && ready {
			sdNotify(daemon.SdNotifyReady)
		}
	}()

	res := reloadResult{}
	fail := func(err error) reloadResult {
		res.OK = false
		res.Error = err.Error()
		res.DurationMS = time.Since(start).Milliseconds()
		m.say("reload: %v", err)
		return res
	}
	apps, file, err := loadApps(m.opts, config.NodeEvalWith(m.runNode))
	if err != nil {
		return fail(fmt.Errorf("the app file is not valid; nothing changed:\n%w", err))
	}
	for _, w := range file.Warnings {
		m.say("warning: %s", w)
	}

	var plans []reloadPlan
	var planErr error
	if err := m.exec(func() { plans, planErr = m.planReload(req.target, apps, file, &res, emit) }); err != nil {
		return fail(err)
	}
	if planErr != nil {
		return fail(planErr)
	}
	for _, a := range res.Apps {
		if a.Action == "failed" {
			res.Error = a.App + ": " + a.Error
		}
	}
	for i, p := range plans {
		r, err := m.reloadApp(p, req.parallel, emit)
		res.Apps = append(res.Apps, r)
		if err != nil {
			for _, q := range plans[i+1:] {
				if q.relisten != nil {
					q.relisten.Abort()
				}
				res.Apps = append(res.Apps, appReloadResult{App: q.cfg.Name, Action: "skipped"})
			}
			return fail(fmt.Errorf("%s: %w; the workers not replaced keep serving, with the settings they had", p.cfg.Name, err))
		}
	}
	if res.Error != "" {
		return fail(errors.New(res.Error))
	}
	res.OK = true
	res.DurationMS = time.Since(start).Milliseconds()
	return res
}

// reloadApp rolls one app onto its new settings. They are applied (to
// the master's view, the log files, the sockets) only when every slot was
// replaced; after a failure the app keeps its old settings and addresses.
func (m *master) reloadApp(p reloadPlan, parallel int, emit func(reloadEvent)) (appReloadResult, error) {
	name := p.cfg.Name
	what := "no settings changed; new processes from what is on disk"
	if len(p.changed) > 0 {
		what = strings.Join(p.changed, ", ") + " changed"
	}
	m.say("reload %s: %s; replacing its workers %d at a time", name, what, parallel)
	r := appReloadResult{App: name, Action: "reloaded", Changed: p.changed}
	if p.relisten != nil {
		p.relisten.Commit()
		m.say("reload %s: listening on %s", name, p.a.sockets)
	}
	scaled := func(n int) {
		emit(reloadEvent{App: name, Instance: -1, Phase: "scaled", Msg: fmt.Sprintf("%d instances", n)})
		m.say("reload %s: scaled to %d", name, n)
	}
	// Fewer instances: only the slots that stay are rolled, and the others
	// go once the roll has succeeded (a failed one leaves every old worker);
	// more: after the roll. A `launch scale` made while the roll runs wins.
	var want, scaledBefore int
	m.exec(func() {
		scaledBefore = p.a.scaled
		n := scaledBefore
		if p.rescale {
			n = 0
		}
		want = m.countFor(p.cfg, n)
	})
	progress := func(st recovery.Step) {
		if st.Phase == recovery.PhaseDone {
			r.Replaced++
		}
		ev := reloadEvent{App: st.App, Instance: st.Instance, Phase: string(st.Phase), PID: st.PID, OldPID: st.OldPID}
		if st.Err != nil {
			ev.Msg = st.Err.Error()
		}
		emit(ev)
	}
	if err := p.a.sup.Reload(p.cfg, parallel, want, progress); err != nil {
		return m.reloadFailed(p, r, err)
	}
	// Done: the new settings hold from here on, whatever happens next.
	if p.relisten != nil {
		// The old workers are gone: the master's copies of the removed
		// addresses close now.
		if rm := p.relisten.Removed(); len(rm) > 0 {
			m.say("reload %s: closing %s", name, strings.Join(rm, ", "))
		}
		p.relisten.CloseRemoved()
	}
	logsChanged := slices.ContainsFunc(p.changed, func(k string) bool { return strings.HasPrefix(k, "log") || strings.HasSuffix(k, "_file") })
	m.exec(func() {
		old := p.a.cfg()
		p.a.setCfg(p.cfg)
		if p.a.scaled != scaledBefore {
			want = p.a.scaled // scaled by hand during the roll
		} else if p.rescale {
			p.a.scaled = 0
		}
		if logsChanged || old.OutFile != p.cfg.OutFile || old.ErrorFile != p.cfg.ErrorFile || old.LogFile != p.cfg.LogFile {
			m.logs.openFiles(p.cfg, m.say)
		}
	})
	if want != p.a.sup.Size() {
		if err := p.a.sup.Scale(want); err != nil {
			r.Error = fmt.Sprintf("reloaded, but scaling to %d failed: %v", want, err)
			m.say("reload %s: %s", name, r.Error)
			return r, nil
		}
		scaled(want)
	}
	m.say("reload %s: done (%d %s replaced)", name, r.Replaced, plural(r.Replaced, "worker"))
	return r, nil
}

// reloadFailed puts back the addresses of an app whose roll failed.
func (m *master) reloadFailed(p reloadPlan, r appReloadResult, err error) (appReloadResult, error) {
	if p.relisten != nil {
		p.relisten.Revert()
		m.say("reload %s: back on %s", p.cfg.Name, p.a.sockets)
	}
	r.Action, r.Error = "failed", err.Error()
	return r, err
}

// planReload checks the new apps against the running ones and starts and
// stops whole apps (loop goroutine). Nothing changes when it returns an
// error.
func (m *master) planReload(target string, apps []*config.App, file *config.File, res *reloadResult, emit func(reloadEvent)) ([]reloadPlan, error) {
	if m.stopping {
		return nil, errStopping
	}
	byName := map[string]*config.App{}
	for _, c := range apps {
		byName[c.Name] = c
	}
	if target != "all" {
		if m.findApp(target) == nil {
			return nil, fmt.Errorf("no app named %q is running (apps: %s)", target, strings.Join(m.appNames(), ", "))
		}
		if byName[target] == nil {
			return nil, fmt.Errorf("app %q is no longer in %s; `launch reload all` stops it", target, m.opts.file)
		}
	}
	var plans []reloadPlan
	var added []*config.App
	abort := func() {
		for _, p := range plans {
			if p.relisten != nil {
				p.relisten.Abort()
			}
		}
	}
	for _, c := range apps {
		if target != "all" && c.Name != target {
			continue
		}
		a := m.findApp(c.Name)
		if a == nil {
			added = append(added, c)
			continue
		}
		plan := reloadPlan{a: a, cfg: c, changed: config.Diff(a.cfg(), c),
			rescale: a.cfg().Instances != c.Instances || a.cfg().InstancesSet != c.InstancesSet}
		if why := proxyChange(a.cfg(), c); why != "" {
			abort()
			return nil, fmt.Errorf("%s: %s; that needs a restart of the master (nothing changed)", c.Name, why)
		}
		if why := socketChange(a.cfg(), c); why != "" {
			if a.cfg().Balance != c.Balance || a.sockets.PerSlot() || a.router != nil || (len(a.cfg().Listen) == 0) != (len(c.Listen) == 0) {
				abort()
				return nil, fmt.Errorf("%s: %s; that needs a restart of the master (nothing changed)", c.Name, why)
			}
			rl, err := a.sockets.PrepareListen(c)
			if err != nil {
				abort()
				return nil, bindHelp(m.opts.file, c, err)
			}
			plan.relisten = rl
		}
		plans = append(plans, plan)
	}
	// Bind the new apps' addresses before anything changes: a port in use
	// aborts the reload.
	var bound []*app
	for _, c := range added {
		set, err := m.reg.Bind(c)
		if err != nil {
			for _, b := range bound {
				b.sockets.Close()
			}
			abort()
			if addr, owner := m.addressOwner(c); owner != "" {
				return nil, fmt.Errorf("app %s: %s is held by app %s of this master; moving an address to another app (a rename included) takes two reloads — first without it, then with it — or a restart of the master (nothing changed)", c.Name, addr, owner)
			}
			return nil, bindHelp(m.opts.file, c, err)
		}
		bound = append(bound, newApp(c, set))
	}
	for _, a := range bound {
		if err := m.startApp(a); err != nil {
			a.sockets.Close()
			m.logs.closeApp(a.cfg().Name)
			m.say("reload: %s: %v", a.cfg().Name, err)
			res.Apps = append(res.Apps, appReloadResult{App: a.cfg().Name, Action: "failed", Error: err.Error()})
			continue
		}
		m.apps = append(m.apps, a)
		res.Apps = append(res.Apps, appReloadResult{App: a.cfg().Name, Action: "added"})
		emit(reloadEvent{App: a.cfg().Name, Instance: -1, Phase: "added"})
	}
	if target == "all" {
		for _, a := range m.apps {
			if a.removing || byName[a.cfg().Name] != nil {
				continue
			}
			m.removeApp(a)
			res.Apps = append(res.Apps, appReloadResult{App: a.cfg().Name, Action: "removed"})
			emit(reloadEvent{App: a.cfg().Name, Instance: -1, Phase: "removed"})
		}
		m.settings.sampleInterval = settingsOf(file).sampleInterval
		m.monitor.interval.Store(int64(m.settings.sampleInterval))
		if s := settingsOf(file); s.metrics != m.settings.metrics || s.shutdownDelay != m.settings.shutdownDelay {
			m.say("reload: metrics and shutdown_delay changes apply when the master starts again")
		}
	}
	return plans, nil
}

// addressOwner finds an address of c that a running app (one being
// removed included) holds, and that app; "" if none.
func (m *master) addressOwner(c *config.App) (addr, owner string) {
	for _, a := range m.apps {
		for _, l := range a.cfg().Listen {
			for _, n := range c.Listen {
				if l.Network == n.Network && l.Address == n.Address {
					return n.String(), a.cfg().Name
				}
			}
		}
	}
	return "", ""
}

// removeApp stops an app a reload dropped, then closes its sockets and
// forgets it (loop goroutine).
func (m *master) removeApp(a *app) {
	a.removing = true
	m.say("reload: %s is no longer in %s; stopping it", a.cfg().Name, m.opts.file)
	a.sup.Stop()
	go func() {
		<-a.sup.Done()
		if a.router != nil {
			a.router.Close()
		}
		a.sockets.Close()
		m.logs.closeApp(a.cfg().Name)
		m.exec(func() {
			if m.stopping {
				return // the stop waits for every supervisor, this one included
			}
			m.apps = slices.DeleteFunc(m.apps, func(x *app) bool { return x == a })
			delete(m.ready, a.cfg().Name)
			m.say("%s: stopped and removed", a.cfg().Name)
		})
	}()
}

// proxyChange says why a proxy app's new settings cannot apply to the
// proxy that runs; "" when they can.
func proxyChange(old, new *config.App) string {
	if old.Proxy == nil || new.Proxy == nil {
		return ""
	}
	var keys []string
	for _, k := range config.Diff(old, new) {
		switch k {
		case "protocol", "proxy_to", "sticky", "health_check":
			keys = append(keys, k)
		default:
			if strings.HasPrefix(k, "proxy.") {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return ""
	}
	return strings.Join(keys, ", ") + " changed"
}

// socketChange says why old → new cannot be rolled onto the sockets the
// master holds; "" when it can.
func socketChange(old, new *config.App) string {
	if old.Balance != new.Balance {
		return fmt.Sprintf("balance changed (%s → %s)", old.Balance, new.Balance)
	}
	if len(old.Listen) != len(new.Listen) {
		return "listen changed"
	}
	for i := range old.Listen {
		o, n := old.Listen[i], new.Listen[i]
		if o.Network != n.Network || o.Address != n.Address || o.Name != n.Name || o.Mode != n.Mode {
			return fmt.Sprintf("listen changed (%s → %s)", o, n)
		}
	}
	return ""
}

func (m *master) appNames() []string {
	var names []string
	for _, a := range m.apps {
		if !a.removing {
			names = append(names, a.cfg().Name)
		}
	}
	return names
}

// sdNotifyReloading tells systemd a reload began (Type=notify-reload wants
// MONOTONIC_USEC with it).
func sdNotifyReloading() {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		sdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
		return
	}
	sdNotify("RELOADING=1")
}
