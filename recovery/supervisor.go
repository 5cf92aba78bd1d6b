package recovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/workers"
)

// Sockets is what a supervisor needs of the app's listening sockets
// (balancer.Set implements it). Methods that take a slot act on that
// slot's own sockets in per-slot (reuseport) mode; slot -1 means all of
// them, and in shared mode every slot means the shared sockets.
type Sockets interface {
	// Files returns the fds and LISTEN_FDNAMES for the worker in slot.
	Files(slot int) ([]*os.File, []string, error)
	// Port is the first TCP port, for PORT; 0 when none.
	Port() int
	// Len is the number of addresses.
	Len() int
	// PerSlot reports whether each slot has its own sockets.
	PerSlot() bool
	// Pause makes the sockets stop taking new connections; it returns
	// how many queued connections were reset or migrated (-1: unknown).
	Pause(slot int) (int, error)
	// Resume undoes Pause.
	Resume(slot int) error
	// Paused reports whether Pause is in effect.
	Paused(slot int) bool
	// CloseSlot closes a removed slot's own sockets.
	CloseSlot(slot int) error
}

// busyRetry is how often a roll looks again at a slot whose other
// replacement (max_memory_restart) is still running.
const busyRetry = 100 * time.Millisecond

// errHalted ends a replacement asked of an app stopped by request.
var errHalted = errors.New("the app was stopped by request")

// slotPauseBound: in per-slot mode, a slot whose worker will be back
// within this delay keeps its socket listening (connections wait for the
// replacement); a longer backoff pauses it, so the kernel sends new
// connections to the other slots instead.
const slotPauseBound = 250 * time.Millisecond

// Router is what a supervisor needs of the app's proxy (balance: proxy,
// balancer.Router implements it): every worker gets a private address of
// its own, joins the rotation when ready, and leaves it before it is told
// to stop.
type Router interface {
	// Assign picks a fresh private address for the next worker of slot and
	// returns the environment that tells the worker where to listen (PORT,
	// LAUNCH_PORT, HOST or LAUNCH_SOCKET).
	Assign(slot int) (env map[string]string, network, addr string, err error)
	// Probe checks the worker's address: it accepts (path "") or GET path
	// answers 2xx.
	Probe(ctx context.Context, network, addr, path string) error
	// Up puts the worker (by pid) in the rotation.
	Up(pid int, network, addr string)
	// Drain takes the worker out of the rotation; the channel closes when
	// the requests or connections it was serving have finished.
	Drain(pid int) <-chan struct{}
	// Down forgets the worker and frees its address: its process is gone
	// (whether or not it ever became ready).
	Down(pid int, network, addr string)
}

// Starter starts worker processes (workers.Spawner implements it).
type Starter interface {
	Start(workers.Spec) (*workers.Process, error)
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// Transition: a worker changed state (Event.Transition).
	Transition EventKind = iota
	// AppReady: every worker of the app became ready (or settled) for the
	// first time since the supervisor started.
	AppReady
	// AppErrored: every worker of the app is errored; nobody serves it.
	AppErrored
	// Lost: a worker is in the unknown state; the master must escalate.
	Lost
	// Note: something the user should read (Event.Msg).
	Note
)

// Event is what a supervisor reports to the master.
type Event struct {
	App        string
	Kind       EventKind
	Transition workers.Transition
	Msg        string
}

// Options configure a Supervisor.
type Options struct {
	// App is the validated app.
	App *config.App
	// Instances is the initial number of slots (≥ 1).
	Instances int
	// Sockets are the app's listening sockets; nil for none (and in proxy
	// mode, where the master accepts and Router forwards).
	Sockets Sockets
	// Router is the app's proxy in balance: proxy; nil otherwise.
	Router Router
	// Starter forks workers.
	Starter Starter
	// Output receives the workers' stdout/stderr; nil discards them.
	Output *workers.Log
	// Clock is the time source; RealClock when nil.
	Clock Clock
	// Environ is the base environment of every worker (os.Environ()).
	Environ []string
	// Notify receives events from the supervisor goroutine. It must not
	// block for long and must not call back into the supervisor.
	Notify func(Event)
}

// ErrStopped is returned by commands sent to a supervisor that has
// stopped or is stopping.
var ErrStopped = errors.New("supervisor stopped")

// Supervisor runs one app's workers: it starts one per slot, applies the
// restart policy when they exit, and replaces them on request. One
// goroutine owns all of its state; the methods send it commands.
type Supervisor struct {
	app    *config.App
	policy Policy
	opts   Options
	clock  Clock

	cmds   chan func()
	events chan event
	done   chan struct{}

	// Owned by the run goroutine:
	slots    []*slot
	stopping bool
	// halted: a person stopped the app (`launch stop`); its workers stay
	// stopped until Resume or Restart.
	halted      bool
	idleWaiters []chan struct{}
	readySent   bool
	erroredSent bool
	hinted      map[string]bool
}

type slot struct {
	index    int
	w        *worker   // the worker serving this slot
	next     *worker   // its replacement while replaceSlot runs
	old      []*worker // replaced workers still stopping
	hist     History
	removing bool // scale-down: drop the slot once w has stopped
}

type timerKind int

const (
	tRestart timerKind = iota
	tReadyDeadline
	tDelayReady
	tKill
	tDrain
	tRaise // start_nice: half the listen_timeout has passed
	numTimers
)

type worker struct {
	slot    *slot
	m       workers.Machine
	proc    *workers.Process
	gen     int // bumped per process, so stale events are ignored
	started time.Time
	ready   bool
	timers  [numTimers]Timer
	// restartDelay is the pending backoff while WaitingRestart.
	restartDelay time.Duration
	lastExit     *workers.ExitStatus
	// stopSent: the stop signal went out (listen_timeout); late readiness
	// is ignored.
	stopSent bool
	// tailOf is the last process, kept after exit for its stderr tail.
	tailOf *workers.Process
	// onReady and onStopped are one-shot hooks for replaceSlot.
	onReady   func()
	onStopped func(err error)
	// relaunch, when set, is the restart reason of a worker being stopped
	// to start again (`launch restart`): it launches when its process exits.
	relaunch string
	// Proxy mode: the process's private address, and whether it is in the
	// rotation (from ready until it is told to stop).
	network, addr string
	routed        bool
	// draining: out of the rotation, waiting for its in-flight work before
	// the stop signal goes out.
	draining bool
}

type evKind int

const (
	evExit evKind = iota
	evReady
	evTimer
	evDrained
)

type event struct {
	w      *worker
	gen    int
	kind   evKind
	timer  timerKind
	status workers.ExitStatus
}

// Start starts the supervisor goroutine and the app's workers.
func Start(opts Options) *Supervisor {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Instances < 1 {
		opts.Instances = 1
	}
	s := &Supervisor{
		app:    opts.App,
		policy: PolicyFor(opts.App),
		opts:   opts,
		clock:  opts.Clock,
		cmds:   make(chan func()),
		events: make(chan event, 64),
		done:   make(chan struct{}),
		hinted: map[string]bool{},
	}
	go s.run()
	return s
}

// Done is closed when every worker has stopped after Stop or Kill.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// do runs fn on the supervisor goroutine and waits for it to be taken.
func (s *Supervisor) do(fn func()) error {
	select {
	case s.cmds <- fn:
		return nil
	case <-s.done:
		return ErrStopped
	}
}

// Stop stops every worker gracefully: the stop signal to each process
// group, SIGKILL after kill_timeout. It returns at once; wait on Done.
func (s *Supervisor) Stop() { s.do(func() { s.stopAll(false) }) }

// Kill sends SIGKILL to every worker's process group at once; wait on Done.
func (s *Supervisor) Kill() { s.do(func() { s.stopAll(true) }) }

// ReplaceAll replaces every worker, one slot at a time, with replaceSlot:
// start the new worker, wait until it is ready, stop the old one. It stops
// at the first slot whose replacement fails and returns why; the workers
// not yet replaced keep serving.
func (s *Supervisor) ReplaceAll() error {
	reply := make(chan error, 1)
	if err := s.do(func() { s.roll(s.activeSlots(), 1, nil, reply) }); err != nil {
		return err
	}
	return s.await(reply)
}

// Scale changes the number of slots to n (≥ 1): new slots start workers;
// removed slots (the highest first) stop theirs gracefully.
func (s *Supervisor) Scale(n int) error {
	if n < 1 {
		return fmt.Errorf("scale %s to %d: at least 1 instance", s.app.Name, n)
	}
	return s.do(func() { s.scale(n) })
}

// ScaleWith sets the number of slots to to(current), on the supervisor
// goroutine, so that concurrent relative changes (+1, -1) are not lost.
// It returns the counts before and after.
func (s *Supervisor) ScaleWith(to func(cur int) (int, error)) (from, n int, err error) {
	type result struct {
		from, n int
		err     error
	}
	r, derr := call(s, func() result {
		cur := len(s.activeSlots())
		n, err := to(cur)
		if err == nil && n < 1 {
			err = fmt.Errorf("scale %s to %d: at least 1 instance", s.app.Name, n)
		}
		if err != nil {
			return result{cur, cur, err}
		}
		s.scale(n)
		return result{cur, n, nil}
	})
	if derr != nil {
		return 0, 0, derr
	}
	return r.from, r.n, r.err
}

// Size returns the current number of slots (not counting slots that are
// being removed).
func (s *Supervisor) Size() int {
	reply := make(chan int, 1)
	if s.do(func() { reply <- len(s.activeSlots()) }) != nil {
		return 0
	}
	return <-reply
}

// WorkerInfo describes one worker, for `launch ls` and tests.
type WorkerInfo struct {
	App      string        `json:"app"`
	Instance int           `json:"instance"`
	PID      int           `json:"pid"`
	State    workers.State `json:"state"`
	Since    time.Time     `json:"since"`
	Restarts int           `json:"restarts"`
	// Incoming is true for a replacement that is not serving yet.
	Incoming bool   `json:"incoming,omitempty"`
	LastExit string `json:"last_exit,omitempty"`
	// Started is when the current process started (zero without one).
	Started time.Time `json:"started,omitzero"`
}

// Workers returns a snapshot of every worker, by slot; nil once stopped.
func (s *Supervisor) Workers() []WorkerInfo {
	reply := make(chan []WorkerInfo, 1)
	if s.do(func() { reply <- s.snapshot() }) != nil {
		return nil
	}
	return <-reply
}

func (s *Supervisor) snapshot() []WorkerInfo {
	var out []WorkerInfo
	add := func(w *worker, incoming bool) {
		st, since := w.m.State()
		info := WorkerInfo{App: s.app.Name, Instance: w.slot.index, State: st, Since: since,
			Restarts: w.slot.hist.Restarts, Incoming: incoming}
		if w.proc != nil {
			info.PID = w.proc.PID
			info.Started = w.started
		}
		if w.lastExit != nil {
			info.LastExit = w.lastExit.String()
		}
		out = append(out, info)
	}
	for _, sl := range s.slots {
		add(sl.w, false)
		if sl.next != nil {
			add(sl.next, true)
		}
		for _, o := range sl.old {
			add(o, false)
		}
	}
	return out
}

// run is the supervisor goroutine.
func (s *Supervisor) run() {
	defer close(s.done)
	for i := 0; i < s.opts.Instances; i++ {
		s.addSlot()
	}
	for !(s.stopping && s.live() == 0) {
		select {
		case fn := <-s.cmds:
			fn()
		case ev := <-s.events:
			s.handle(ev)
		}
		s.wakeIdle()
	}
	for _, sl := range s.slots {
		for _, w := range s.workersOf(sl) {
			w.stopTimers()
		}
	}
	s.releaseIdle()
}

func (s *Supervisor) workersOf(sl *slot) []*worker {
	ws := append([]*worker{sl.w}, sl.old...)
	if sl.next != nil {
		ws = append(ws, sl.next)
	}
	return ws
}

// live counts workers with a process.
func (s *Supervisor) live() int {
	n := 0
	for _, sl := range s.slots {
		for _, w := range s.workersOf(sl) {
			if w.proc != nil {
				n++
			}
		}
	}
	return n
}

func (s *Supervisor) post(ev event) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

func (s *Supervisor) notify(ev Event) {
	ev.App = s.app.Name
	if s.opts.Notify != nil {
		s.opts.Notify(ev)
	}
}

func (s *Supervisor) note(format string, args ...any) {
	s.notify(Event{Kind: Note, Msg: fmt.Sprintf(format, args...)})
}

func (s *Supervisor) newWorker(sl *slot) *worker {
	w := &worker{slot: sl}
	w.m.Name = fmt.Sprintf("%s.%d", s.app.Name, sl.index)
	w.m.Now = s.clock.Now
	w.m.OnChange = func(t workers.Transition) { s.notify(Event{Kind: Transition, Transition: t}) }
	return w
}

// addSlot adds a slot with the lowest instance number no slot uses
// (slots being removed included), and starts its worker.
func (s *Supervisor) addSlot() {
	index := 0
	for slices.ContainsFunc(s.slots, func(sl *slot) bool { return sl.index == index }) {
		index++
	}
	sl := &slot{index: index}
	sl.w = s.newWorker(sl)
	s.slots = append(s.slots, sl)
	if s.halted {
		return // a stopped app's new slots start with it (Resume)
	}
	s.launch(sl.w)
}

// set applies a transition; an illegal one is a bug, reported loudly.
func (s *Supervisor) set(w *worker, to workers.State, reason string) {
	if err := w.m.Set(to, reason); err != nil {
		s.note("internal error: %v", err)
	}
}

func (w *worker) state() workers.State {
	st, _ := w.m.State()
	return st
}

func (s *Supervisor) after(w *worker, k timerKind, d time.Duration) {
	if t := w.timers[k]; t != nil {
		t.Stop()
	}
	gen := w.gen
	w.timers[k] = s.clock.AfterFunc(d, func() { s.post(event{w: w, gen: gen, kind: evTimer, timer: k}) })
}

func (w *worker) stopTimer(k timerKind) {
	if t := w.timers[k]; t != nil {
		t.Stop()
		w.timers[k] = nil
	}
}

func (w *worker) stopTimers() {
	for k := range w.timers {
		w.stopTimer(timerKind(k))
	}
}

// launch starts a process for w: from None, Stopped, WaitingRestart or
// Errored to Launching. A start that fails before the fork (program not
// found, bad directory) errors the worker: retrying cannot help.
func (s *Supervisor) launch(w *worker) {
	if so, slot := s.opts.Sockets, s.sockSlot(w.slot); so != nil && so.Paused(slot) {
		if err := so.Resume(slot); err != nil {
			s.failStart(w, fmt.Errorf("cannot listen again: %w", err))
			return
		}
		if so.PerSlot() {
			s.note("%s: its socket listens again", w.m.Name)
		} else {
			s.note("listening again")
		}
	}
	var extra map[string]string
	var network, addr string
	var err error
	if s.opts.Router != nil {
		extra, network, addr, err = s.opts.Router.Assign(w.slot.index)
	}
	var spec workers.Spec
	if err == nil {
		spec, err = s.spec(w.slot.index, w.m.Name, extra)
	}
	var p *workers.Process
	if err == nil {
		p, err = s.opts.Starter.Start(spec)
	}
	if err != nil {
		s.failStart(w, err)
		return
	}
	w.gen++
	w.proc, w.tailOf, w.started, w.ready, w.stopSent = p, p, s.clock.Now(), false, false
	w.network, w.addr, w.routed, w.draining = network, addr, false, false
	how := "pid " + strconv.Itoa(p.PID)
	if addr != "" {
		how += " on " + addr
	}
	s.set(w, workers.Launching, how)
	s.after(w, tReadyDeadline, s.app.ListenTimeout)
	if spec.StartNice > 0 {
		s.after(w, tRaise, s.app.ListenTimeout/2)
	}
	if s.app.Ready.Kind == config.ReadyDelay {
		s.after(w, tDelayReady, s.app.Ready.Delay)
	}
	go s.watch(w, p, w.gen)
	if k := s.app.Ready.Kind; s.opts.Router != nil && (k == config.ReadyListen || k == config.ReadyHTTP) {
		path := ""
		if k == config.ReadyHTTP {
			path = s.app.Ready.Path
		}
		go s.probe(w, p, w.gen, network, addr, path, s.app.ListenTimeout)
	}
}

// failStart handles a start that failed before any process ran (program
// gone during a deploy, fork failed, sockets could not listen again): like
// a run that exited at once without becoming ready, it goes through the
// restart policy, so a passing cause is retried and a lasting one ends in
// errored.
func (s *Supervisor) failStart(w *worker, err error) {
	if w.state() != workers.Launching {
		s.set(w, workers.Launching, "start")
	}
	w.ready = false
	st := workers.ExitStatus{Code: -1, StartErr: err.Error(), At: s.clock.Now()}
	w.lastExit = &st
	if w == w.slot.next {
		s.set(w, workers.Stopped, "replacement failed: "+st.String())
		w.slot.next = nil
		s.finish(w, fmt.Errorf("%s: replacement %s", w.m.Name, st))
		s.checkApp()
		return
	}
	s.decide(w, st, 0)
	s.checkApp()
}

// watch forwards p's readiness and exit to the supervisor goroutine.
// It ends when p has exited (or the supervisor is gone).
func (s *Supervisor) watch(w *worker, p *workers.Process, gen int) {
	select {
	case <-p.Ready():
		s.post(event{w: w, gen: gen, kind: evReady})
	case <-p.Done():
	case <-s.done:
		return
	}
	select {
	case <-p.Done():
	case <-s.done:
		return
	}
	// Give the stderr reader a moment to reach EOF, so the exit hints
	// see the process's last words.
	select {
	case <-p.OutputDone():
	case <-time.After(100 * time.Millisecond):
	}
	s.post(event{w: w, gen: gen, kind: evExit, status: p.Status()})
}

// probe polls a proxy-mode worker's private address until it accepts (or
// answers 2xx on the ready path), then reports it ready. It ends with the
// process, the supervisor, or the listen_timeout (whose timer stops the
// worker).
func (s *Supervisor) probe(w *worker, p *workers.Process, gen int, network, addr, path string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.opts.Router.Probe(ctx, network, addr, path)
		cancel()
		if err == nil {
			s.post(event{w: w, gen: gen, kind: evReady})
			return
		}
		select {
		case <-p.Done():
			return
		case <-s.done:
			return
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// spec builds the Spec for slot's next worker, resolving the program now,
// so a rebuilt binary or changed PATH is picked up by every start. extra
// is added to the environment (proxy mode: the worker's private address).
func (s *Supervisor) spec(slotIndex int, name string, extra map[string]string) (workers.Spec, error) {
	a := s.app
	env := mergeEnv(s.opts.Environ, a.Env)
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		env = setEnv(env, k, extra[k])
	}
	inst := strconv.Itoa(slotIndex)
	env = setEnv(env, "LAUNCH_APP", a.Name)
	env = setEnv(env, "LAUNCH_INSTANCE", inst)
	env = setEnv(env, "NODE_APP_INSTANCE", inst)
	spec := workers.Spec{
		Name:       name,
		Args:       a.Args,
		Dir:        a.Dir,
		Credential: a.Credential,
		Output:     s.opts.Output,
		Notify:     a.Ready.Kind == config.ReadyNotify,
		IPC:        a.Ready.Kind == config.ReadyIPC,
	}
	if s.opts.Sockets != nil && a.ExecMode != config.ExecFork {
		var err error
		spec.Files, spec.FileNames, err = s.opts.Sockets.Files(slotIndex)
		if err != nil {
			return spec, err
		}
		if p := s.opts.Sockets.Port(); p != 0 {
			env = setEnv(env, "PORT", strconv.Itoa(p))
		}
	}
	spec.Env = env
	if a.StartNice > 0 {
		ok, err := workers.CanRestoreNice()
		if ok && a.Credential != nil && !workers.HasCapSysNice() {
			// Raising another user's threads needs the capability itself.
			ok, err = false, fmt.Errorf("the workers run as another user, which needs CAP_SYS_NICE")
		}
		if ok {
			spec.StartNice = a.StartNice
		} else if !s.hinted["nice"] {
			s.hinted["nice"] = true
			s.note("start_nice %d is not used: the master could not raise a worker back to its own priority once ready (%v)", a.StartNice, err)
		}
	}
	path, err := workers.LookPath(a.Command, a.Dir, getEnv(env, "PATH"))
	if err != nil {
		return spec, err
	}
	spec.Path = path
	if len(spec.Files) > 0 && !s.hinted["wrapper"] && isWrapper(path) {
		s.hinted["wrapper"] = true
		s.note("the worker runs through %s, so LISTEN_PID names %s, not your app: apps that check it "+
			"(sd_listen_fds, go-systemd) will ignore the sockets. Use `exec` in the script or run the app directly.",
			filepath.Base(path), filepath.Base(path))
	}
	return spec, nil
}

// handle applies one event from a process watcher or a timer.
func (s *Supervisor) handle(ev event) {
	w := ev.w
	if ev.gen != w.gen {
		return // about a previous process of this worker
	}
	switch ev.kind {
	case evReady:
		s.becomeReady(w, "READY")
	case evExit:
		s.exited(w, ev.status)
	case evTimer:
		w.timers[ev.timer] = nil
		s.timer(w, ev.timer)
	case evDrained:
		s.drained(w, "in-flight work done")
	}
}

func (s *Supervisor) timer(w *worker, k timerKind) {
	switch k {
	case tDelayReady:
		if w.proc != nil {
			s.becomeReady(w, "up "+roundDur(s.app.Ready.Delay).String())
		}
	case tReadyDeadline:
		if w.proc != nil && w.state() == workers.Launching {
			s.note("%s (pid %d) was not ready within listen_timeout %s; stopping it", w.m.Name, w.proc.PID, s.app.ListenTimeout)
			w.stopSent = true
			s.signal(w, s.app.StopSignal)
			s.after(w, tKill, s.app.KillTimeout)
		}
	case tDrain:
		s.drained(w, fmt.Sprintf("still busy after kill_timeout %s", s.app.KillTimeout))
	case tRaise:
		// A worker that boots slowly at low priority must not turn into
		// a failed start: from half its listen_timeout on it runs at the
		// master's priority.
		if w.proc != nil && w.state() == workers.Launching && !w.stopSent {
			if err := w.proc.RestoreNice(); err != nil {
				s.note("%s (pid %d): %v", w.m.Name, w.proc.PID, err)
			} else {
				s.note("%s (pid %d) not ready after half its listen_timeout (%s): raised from start_nice to the master's priority",
					w.m.Name, w.proc.PID, roundDur(s.app.ListenTimeout/2))
			}
		}
	case tKill:
		if w.proc != nil {
			s.note("%s (pid %d) did not exit within kill_timeout %s; sending SIGKILL", w.m.Name, w.proc.PID, s.app.KillTimeout)
			s.signal(w, syscall.SIGKILL)
		}
	case tRestart:
		if w.state() == workers.WaitingRestart && !s.stopping && !s.halted {
			s.launch(w)
		}
	}
}

func (s *Supervisor) signal(w *worker, sig syscall.Signal) {
	if err := w.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.note("%s: %v", w.m.Name, err)
	}
}

func (s *Supervisor) becomeReady(w *worker, how string) {
	if w.state() != workers.Launching || w.stopSent {
		return
	}
	w.ready = true
	w.stopTimer(tReadyDeadline)
	w.stopTimer(tDelayReady)
	w.stopTimer(tRaise)
	if err := w.proc.RestoreNice(); err != nil {
		s.note("%s (pid %d): %v", w.m.Name, w.proc.PID, err)
	}
	if s.opts.Router != nil && w.addr != "" {
		s.opts.Router.Up(w.proc.PID, w.network, w.addr)
		w.routed = true
	}
	s.set(w, workers.Online, how)
	if w.onReady != nil {
		f := w.onReady
		w.onReady = nil
		f()
	}
	s.checkApp()
}

// exited handles the exit of w's process.
func (s *Supervisor) exited(w *worker, st workers.ExitStatus) {
	w.stopTimers()
	if s.opts.Router != nil && w.proc != nil {
		s.opts.Router.Down(w.proc.PID, w.network, w.addr)
	}
	w.routed, w.draining = false, false
	uptime := s.clock.Now().Sub(w.started)
	w.proc = nil
	w.lastExit = &st
	sl := w.slot
	defer s.checkApp()

	if st.Lost {
		s.set(w, workers.Unknown, st.String())
		s.notify(Event{Kind: Lost, Msg: fmt.Sprintf("%s: %s", w.m.Name, st)})
		s.finish(w, fmt.Errorf("%s: %s", w.m.Name, st))
		return
	}
	if w.state() == workers.Stopping || s.stopping {
		s.set(w, workers.Stopped, st.String())
		s.finish(w, nil)
		if why := w.relaunch; why != "" && !s.stopping && !s.halted && w == sl.w && !sl.removing {
			w.relaunch = ""
			sl.hist.Unstable = 0
			sl.hist.record(RestartRecord{At: s.clock.Now(), Reason: why, PID: st.PID, Exit: st.String()})
			s.launch(w)
		}
		return
	}
	if w == sl.next {
		// A replacement that died before it was ready: discard it; the
		// old worker keeps the slot.
		s.hint(w, st)
		s.set(w, workers.Stopped, "replacement failed: "+st.String())
		sl.next = nil
		s.finish(w, fmt.Errorf("%s: replacement exited before it was ready (%s)", w.m.Name, st))
		return
	}
	if !w.ready {
		s.hint(w, st)
	}
	s.decide(w, st, uptime)
}

// decide applies the restart policy to an exit of w's run.
func (s *Supervisor) decide(w *worker, st workers.ExitStatus, uptime time.Duration) {
	d := s.policy.OnExit(&w.slot.hist, uptime, st, w.ready)
	if h := &w.slot.hist; d.Action == Restart && w.stopSent && !w.ready && len(h.Log) > 0 {
		h.ByReason[h.Log[len(h.Log)-1].Reason]--
		h.Log[len(h.Log)-1].Reason = ReasonListenTimeout
		h.ByReason[ReasonListenTimeout]++
	}
	switch d.Action {
	case Stop:
		s.set(w, workers.Stopped, d.Reason)
	case GiveUp:
		s.set(w, workers.Errored, d.Reason)
	case Restart:
		w.restartDelay = d.Delay
		s.set(w, workers.WaitingRestart, d.Reason)
		s.after(w, tRestart, d.Delay)
	}
	s.finish(w, nil)
}

// finish runs w's onStopped hook once and drops w from its slot's old
// list; a slot being removed goes when none of its workers runs.
func (s *Supervisor) finish(w *worker, err error) {
	sl := w.slot
	if i := slices.Index(sl.old, w); i >= 0 {
		sl.old = slices.Delete(sl.old, i, i+1)
	}
	if f := w.onStopped; f != nil {
		w.onStopped = nil
		f(err)
	}
	s.maybeDropSlot(sl)
}

func (s *Supervisor) maybeDropSlot(sl *slot) {
	if !sl.removing || sl.w.proc != nil || sl.next != nil || len(sl.old) > 0 {
		return
	}
	if i := slices.Index(s.slots, sl); i >= 0 {
		s.slots = slices.Delete(s.slots, i, i+1)
	}
	if s.opts.Sockets != nil && s.opts.Sockets.PerSlot() {
		if err := s.opts.Sockets.CloseSlot(sl.index); err != nil {
			s.note("%s.%d: closing its socket: %v", s.app.Name, sl.index, err)
		}
	}
}

// migrateReq reports whether net.ipv4.tcp_migrate_req is on, so
// connections queued on a paused reuseport socket move to another socket
// of the group instead of being reset. Never required.
func migrateReq() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// sockSlot is the slot argument for Sockets: the slot's index in per-slot
// mode, -1 (every socket) in shared mode.
func (s *Supervisor) sockSlot(sl *slot) int {
	if s.opts.Sockets != nil && s.opts.Sockets.PerSlot() {
		return sl.index
	}
	return -1
}

// pauseSlot takes a slot's own socket out of the reuseport group.
func (s *Supervisor) pauseSlot(sl *slot, why string) {
	so := s.opts.Sockets
	if so == nil || !so.PerSlot() || so.Paused(sl.index) {
		return
	}
	n, err := so.Pause(sl.index)
	name := fmt.Sprintf("%s.%d", s.app.Name, sl.index)
	switch {
	case err != nil:
		s.note("%s: cannot pause its socket: %v", name, err)
	case n > 0 && migrateReq():
		s.note("%s: %s: paused its socket; %d queued connections migrated to the other workers (net.ipv4.tcp_migrate_req=1)", name, why, n)
	case n > 0:
		s.note("%s: %s: paused its socket; %d queued connections were reset (set net.ipv4.tcp_migrate_req=1 to move them to the other workers)", name, why, n)
	default:
		s.note("%s: %s: paused its socket; new connections go to the other workers", name, why)
	}
}

// hint explains early exits whose cause launch can recognise.
func (s *Supervisor) hint(w *worker, st workers.ExitStatus) {
	if s.hinted["addrinuse"] {
		return
	}
	for _, line := range w.lastTail() {
		l := strings.ToLower(line)
		if strings.Contains(l, "eaddrinuse") || strings.Contains(l, "address already in use") {
			s.hinted["addrinuse"] = true
			if s.opts.Router != nil {
				s.note("%s exited (%s) with \"address already in use\": in balance proxy each worker gets a port of its own "+
					"in $PORT (and $HOST); make the app listen there, not on a fixed port.", w.m.Name, st)
				return
			}
			s.note("%s exited (%s) with \"address already in use\": the app binds its own port instead of "+
				"using the socket launch passes as fd 3 (LISTEN_FDS). Make it use the inherited socket, "+
				"or set `balance: proxy` for apps that can only bind a port.", w.m.Name, st)
			return
		}
	}
}

// lastTail returns the stderr tail of the process that just exited.
func (w *worker) lastTail() []string {
	if w.tailOf == nil {
		return nil
	}
	return w.tailOf.Tail()
}

// stop stops w gracefully: the stop signal, then SIGKILL after
// kill_timeout. A worker without a process goes straight to Stopped.
func (s *Supervisor) stop(w *worker, reason string) {
	switch w.state() {
	case workers.Stopping, workers.Stopped, workers.None, workers.Unknown:
		return
	}
	if w.proc == nil {
		w.stopTimers()
		s.set(w, workers.Stopped, reason)
		s.finish(w, nil)
		return
	}
	s.set(w, workers.Stopping, reason)
	w.stopTimer(tReadyDeadline)
	w.stopTimer(tDelayReady)
	if w.routed {
		// Proxy mode: out of the rotation first, so no new request reaches
		// a worker that is stopping (PM2 keeps routing: Unitech/pm2#5043);
		// the stop signal follows when its in-flight work is done, at most
		// kill_timeout later.
		w.routed, w.draining = false, true
		ch, gen := s.opts.Router.Drain(w.proc.PID), w.gen
		s.after(w, tDrain, s.app.KillTimeout)
		go func() {
			select {
			case <-ch:
				s.post(event{w: w, gen: gen, kind: evDrained})
			case <-s.done:
			}
		}()
		return
	}
	s.signal(w, s.app.StopSignal)
	s.after(w, tKill, s.app.KillTimeout)
}

// drained sends the stop signal to a worker that has left the rotation.
func (s *Supervisor) drained(w *worker, why string) {
	if !w.draining || w.proc == nil {
		return
	}
	w.draining = false
	w.stopTimer(tDrain)
	if why != "" && !strings.HasPrefix(why, "in-flight") {
		s.note("%s (pid %d) left the rotation but is %s; stopping it anyway", w.m.Name, w.proc.PID, why)
	}
	s.signal(w, s.app.StopSignal)
	s.after(w, tKill, s.app.KillTimeout)
}

func (s *Supervisor) stopAll(force bool) {
	first := !s.stopping
	s.stopping = true
	for _, sl := range s.slots {
		for _, w := range s.workersOf(sl) {
			if first || w.proc == nil {
				s.stop(w, "master stopping")
			}
			if force && w.proc != nil {
				w.draining = false
				s.signal(w, syscall.SIGKILL)
			}
		}
	}
}

// replaceSlot starts a new worker in slot sl, waits until it is ready,
// then stops the old one; done is called once, with nil when the old
// worker has stopped (or the slot is being removed, so there is nothing to
// replace), or with the reason the replacement failed (the old worker then
// keeps serving).
//
// reason is the restart reason recorded for the slot (ReasonReload,
// ReasonMemory); progress, when not nil, hears each step.
func (s *Supervisor) replaceSlot(sl *slot, reason string, progress func(Step), done func(error)) {
	if progress == nil {
		progress = func(Step) {}
	}
	if s.halted || s.stopping {
		done(errHalted)
		return
	}
	step := func(phase Phase, pid, oldPID int, err error) {
		progress(Step{App: s.app.Name, Instance: sl.index, Phase: phase, PID: pid, OldPID: oldPID, Err: err})
	}
	if sl.removing || !slices.Contains(s.slots, sl) {
		done(nil)
		return
	}
	if sl.next != nil {
		done(fmt.Errorf("%s.%d: a replacement is already starting", s.app.Name, sl.index))
		return
	}
	finished := done
	oldPID := 0
	if sl.w.proc != nil {
		oldPID = sl.w.proc.PID
	}
	nw := s.newWorker(sl)
	sl.next = nw
	nw.onStopped = func(err error) {
		if sl.next == nw {
			sl.next = nil
		}
		if err == nil && sl.removing {
			finished(nil) // scaled away meanwhile: nothing left to replace
			return
		}
		switch {
		case err == nil && s.stopping:
			err = ErrStopped
		case err == nil && s.halted:
			err = errHalted
		}
		if err == nil {
			err = fmt.Errorf("%s: replacement stopped before it was ready", nw.m.Name)
		}
		step(PhaseFailed, 0, oldPID, err)
		finished(err)
	}
	nw.onReady = func() {
		old := sl.w
		sl.w, sl.next = nw, nil
		nw.onStopped = nil
		sl.hist.record(RestartRecord{At: s.clock.Now(), Reason: reason, PID: oldPID})
		sl.hist.Unstable = 0
		step(PhaseReady, nw.proc.PID, oldPID, nil)
		if old.proc == nil {
			s.stop(old, "replaced")
			step(PhaseDone, nw.proc.PID, oldPID, nil)
			finished(nil)
			return
		}
		sl.old = append(sl.old, old)
		newPID := nw.proc.PID
		old.onStopped = func(err error) {
			step(PhaseDone, newPID, oldPID, err)
			finished(err)
		}
		s.stop(old, fmt.Sprintf("replaced by pid %d (%s)", nw.proc.PID, reason))
	}
	s.launch(nw)
	if nw.proc != nil {
		step(PhaseStarting, nw.proc.PID, oldPID, nil)
	}
}

// roll replaces the given slots (a snapshot taken when the roll began;
// slots removed meanwhile are skipped), at most parallel at a time. At the
// first failure it starts no more replacements, lets the ones under way
// finish, and replies with the first error; the slots not replaced keep
// their old workers.
func (s *Supervisor) roll(slots []*slot, parallel int, progress func(Step), reply chan<- error) {
	if parallel < 1 {
		parallel = 1
	}
	var firstErr error
	inflight := 0
	var next func()
	next = func() {
		for inflight < parallel && len(slots) > 0 && firstErr == nil {
			if s.stopping {
				firstErr = ErrStopped
				break
			}
			if s.halted {
				firstErr = errHalted
				break
			}
			sl := slots[0]
			slots = slots[1:]
			inflight++
			if sl.next != nil && !sl.removing {
				// Another replacement (max_memory_restart) runs in this
				// slot: wait for it, then replace the slot again, so the
				// reload's settings and binary are what serve.
				s.clock.AfterFunc(busyRetry, func() {
					s.do(func() {
						inflight--
						slots = append([]*slot{sl}, slots...)
						next()
					})
				})
				continue
			}
			s.replaceSlot(sl, ReasonReload, progress, func(err error) {
				inflight--
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("reload %s stopped at instance %d: %w", s.app.Name, sl.index, err)
				}
				next()
			})
		}
		if inflight == 0 && (len(slots) == 0 || firstErr != nil) {
			if reply != nil {
				reply <- firstErr
				reply = nil
			}
		}
	}
	next()
}

func (s *Supervisor) scale(n int) {
	if s.stopping {
		return
	}
	for len(s.activeSlots()) < n {
		s.addSlot()
	}
	active := s.activeSlots()
	for i := len(active) - 1; i >= n; i-- {
		sl := active[i]
		sl.removing = true
		s.pauseSlot(sl, "scaled down")
		if sl.next != nil {
			s.stop(sl.next, "scaled down")
		}
		s.stop(sl.w, "scaled down")
		s.maybeDropSlot(sl)
	}
}

func (s *Supervisor) activeSlots() []*slot {
	var out []*slot
	for _, sl := range s.slots {
		if !sl.removing {
			out = append(out, sl)
		}
	}
	return out
}

// checkApp reports app-wide changes: ready, all errored; and pauses the
// sockets when no worker will come back soon (design §3), so clients are
// refused at once instead of hanging.
func (s *Supervisor) checkApp() {
	if s.stopping {
		return
	}
	online, errored, comeback := 0, 0, false
	for _, sl := range s.activeSlots() {
		for _, w := range []*worker{sl.w, sl.next} {
			if w == nil {
				continue
			}
			switch w.state() {
			case workers.Online:
				online++
			case workers.Errored:
				errored++
			}
		}
		comeback = comeback || s.slotComesBack(sl, s.app.ListenTimeout)
	}
	n := len(s.activeSlots())
	if !s.readySent && online+errored == n && online > 0 {
		s.readySent = true
		s.notify(Event{Kind: AppReady, Msg: fmt.Sprintf("%d of %d workers online", online, n)})
	}
	if errored == n && n > 0 && !s.halted {
		if !s.erroredSent {
			s.erroredSent = true
			s.readySent = true
			s.notify(Event{Kind: AppErrored, Msg: fmt.Sprintf("every worker (%d) is errored: nobody serves %s; fix the app and run `launch restart %s`", n, s.app.Name, s.app.Name)})
		}
	} else {
		s.erroredSent = false
	}
	if so := s.opts.Sockets; so != nil && so.PerSlot() {
		for _, sl := range s.activeSlots() {
			if !s.slotComesBack(sl, slotPauseBound) {
				s.pauseSlot(sl, "no worker for a while")
			}
		}
		return
	}
	if !comeback && s.opts.Sockets != nil && s.opts.Sockets.Len() > 0 && !s.opts.Sockets.Paused(-1) {
		reset, err := s.opts.Sockets.Pause(-1)
		switch {
		case err != nil:
			s.note("cannot pause listening: %v", err)
		case reset > 0:
			s.note("no worker will come back soon: stopped listening, new connections are refused; %d queued connections were reset", reset)
		default:
			s.note("no worker will come back soon: stopped listening, new connections are refused")
		}
	}
}

// slotComesBack reports whether the slot has, or will have within the
// given backoff bound, a worker accepting on its sockets.
func (s *Supervisor) slotComesBack(sl *slot, within time.Duration) bool {
	for _, w := range []*worker{sl.w, sl.next} {
		if w == nil {
			continue
		}
		switch w.state() {
		case workers.Online, workers.Launching, workers.Stopping:
			return true
		case workers.WaitingRestart:
			if w.restartDelay <= within {
				return true
			}
		}
	}
	return false
}

// mergeEnv returns base with app's variables set over it.
func mergeEnv(base []string, app map[string]string) []string {
	env := slices.Clone(base)
	keys := make([]string, 0, len(app))
	for k := range app {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = setEnv(env, k, app[k])
	}
	return env
}

func setEnv(env []string, k, v string) []string {
	prefix := k + "="
	for i, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			env[i] = prefix + v
			return env
		}
	}
	return append(env, prefix+v)
}

func getEnv(env []string, k string) string {
	prefix := k + "="
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			return kv[len(prefix):]
		}
	}
	return ""
}

func isWrapper(path string) bool {
	switch filepath.Base(path) {
	case "sh", "bash", "dash", "zsh", "npm", "npx", "yarn", "pnpm", "env":
		return true
	}
	return false
}
