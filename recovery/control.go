package recovery

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"syscall"

	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/workers"
)

// Phase is a step of one slot's replacement, as `launch reload` shows it.
type Phase string

// The phases of replaceSlot, in order; PhaseFailed ends a replacement that
// did not become ready (the old worker keeps the slot).
const (
	PhaseStarting Phase = "starting" // the new worker's process runs
	PhaseReady    Phase = "ready"    // the new worker is ready; the old one is told to stop
	PhaseDone     Phase = "done"     // the old worker has stopped
	PhaseFailed   Phase = "failed"   // the new worker failed; Err says why
)

// Step is one progress report of a replacement.
type Step struct {
	App      string `json:"app"`
	Instance int    `json:"instance"`
	Phase    Phase  `json:"phase"`
	PID      int    `json:"pid,omitempty"`     // the new worker
	OldPID   int    `json:"old_pid,omitempty"` // the worker it replaces
	Err      error  `json:"-"`
}

// ErrBusy is returned when a replacement of the slot is already under way.
var ErrBusy = errors.New("a replacement is already under way")

// call runs fn on the supervisor goroutine and returns its result.
func call[T any](s *Supervisor, fn func() T) (T, error) {
	reply := make(chan T, 1)
	if err := s.do(func() { reply <- fn() }); err != nil {
		var zero T
		return zero, err
	}
	return <-reply, nil
}

// Halt stops every worker of the app gracefully (stop signal, SIGKILL after
// kill_timeout) and keeps them stopped — `launch stop`. The supervisor
// stays, so Resume or Restart brings them back. The app's sockets stop
// listening once no worker is left, so clients are refused, not queued.
// done, if not nil, is closed when no worker of the app has a process.
func (s *Supervisor) Halt() (done <-chan struct{}, err error) {
	return call(s, func() <-chan struct{} {
		s.halted = true
		for _, sl := range s.slots {
			for _, w := range s.workersOf(sl) {
				w.relaunch = ""
				s.stop(w, "stopped by request")
			}
		}
		s.checkApp()
		return s.whenIdle()
	})
}

// whenIdle returns a channel closed once no worker of the app has a
// process (checked on every event; call on the supervisor goroutine).
func (s *Supervisor) whenIdle() <-chan struct{} {
	ch := make(chan struct{})
	if s.live() == 0 {
		close(ch)
		return ch
	}
	s.idleWaiters = append(s.idleWaiters, ch)
	return ch
}

// wakeIdle closes the idle waiters when no process is left.
func (s *Supervisor) wakeIdle() {
	if s.live() == 0 {
		s.releaseIdle()
	}
}

// releaseIdle ends the waits of Halt callers: every worker is gone, or the
// app was started again, so "every worker gone" will not come.
func (s *Supervisor) releaseIdle() {
	for _, ch := range s.idleWaiters {
		close(ch)
	}
	s.idleWaiters = nil
}

// startAgain is the frame of Resume and Restart: on the supervisor
// goroutine, unless the master stops, the app is no longer halted, each
// active slot goes through do (which reports whether it counts), and the
// waits of Halt callers end.
func (s *Supervisor) startAgain(do func(sl *slot) bool) (int, error) {
	return call(s, func() int {
		if s.stopping {
			return 0
		}
		s.halted = false
		n := 0
		for _, sl := range s.activeSlots() {
			if do(sl) {
				n++
			}
		}
		s.erroredSent = false
		s.releaseIdle()
		return n
	})
}

// Resume starts every worker that is stopped or errored — `launch start`.
// It returns how many it started.
func (s *Supervisor) Resume() (int, error) {
	return s.startAgain(func(sl *slot) bool {
		w := sl.w
		switch w.state() {
		case workers.None, workers.Stopped, workers.Errored:
			sl.hist.Unstable = 0
			s.launch(w)
		case workers.WaitingRestart:
			// Start now rather than after the backoff: a person asked.
			w.stopTimer(tRestart)
			s.launch(w)
		case workers.Stopping:
			w.relaunch = ReasonRestart
		default:
			return false
		}
		return true
	})
}

// Restart stops every worker and starts it again — `launch restart`, PM2's
// blunt restart: the slot is empty between the two (use a reload for no
// downtime). Stopped and errored workers start too. Each restart is
// recorded with reason "restart".
func (s *Supervisor) Restart() (int, error) {
	return s.startAgain(func(sl *slot) bool {
		w := sl.w
		switch w.state() {
		case workers.Launching, workers.Online:
			w.relaunch = ReasonRestart
			s.stop(w, "restart by request")
		case workers.Stopping:
			w.relaunch = ReasonRestart
		default:
			w.stopTimer(tRestart)
			sl.hist.Unstable = 0
			sl.hist.record(RestartRecord{At: s.clock.Now(), Reason: ReasonRestart})
			s.launch(w)
		}
		return true
	})
}

// Signal sends sig to the process group of every worker that runs. It
// returns how many were signalled.
func (s *Supervisor) Signal(sig syscall.Signal) (int, error) {
	return call(s, func() int {
		n := 0
		for _, sl := range s.slots {
			for _, w := range s.workersOf(sl) {
				if w.proc != nil {
					s.signal(w, sig)
					n++
				}
			}
		}
		return n
	})
}

// ReplaceInstance replaces the worker in slot instance through replaceSlot
// (new worker ready before the old one stops), recording reason. The
// channel receives the result once the old worker has stopped or the
// replacement has failed.
func (s *Supervisor) ReplaceInstance(instance int, reason string) <-chan error {
	reply := make(chan error, 1)
	err := s.do(func() {
		i := slices.IndexFunc(s.slots, func(sl *slot) bool { return sl.index == instance && !sl.removing })
		switch {
		case s.stopping || s.halted:
			reply <- ErrStopped
		case i < 0:
			reply <- fmt.Errorf("%s has no instance %d", s.app.Name, instance)
		case s.slots[i].next != nil:
			reply <- fmt.Errorf("%s.%d: %w", s.app.Name, instance, ErrBusy)
		default:
			s.replaceSlot(s.slots[i], reason, nil, func(err error) { reply <- err })
		}
	})
	if err != nil {
		reply <- err
	}
	return reply
}

// Reload is a rolling reload (design §5): when app is not nil it becomes
// the app's configuration first (its env, script, timeouts and restart
// rules apply to every worker started from now on); then every slot is
// replaced through replaceSlot, parallel at a time. It returns when the
// roll has finished or stopped at a failed replacement; the workers not
// yet replaced keep serving. progress runs on the supervisor goroutine and
// must not block. keep > 0 replaces only the first keep slots (the ones a
// smaller instance count keeps; the caller scales the others away after a
// roll that succeeded), so no worker is started only to be stopped and a
// failed roll leaves every old worker in place.
func (s *Supervisor) Reload(app *config.App, parallel, keep int, progress func(Step)) error {
	reply := make(chan error, 1)
	err := s.do(func() {
		if s.stopping {
			reply <- ErrStopped
			return
		}
		old := s.app
		if app != nil {
			s.app = app
			s.policy = PolicyFor(app)
		}
		if s.halted {
			reply <- nil // a stopped app stays stopped; its next start uses app
			return
		}
		// The new settings hold only if the roll succeeds: after a failed
		// one, the workers not replaced (and their restarts) keep the old.
		rolled := make(chan error, 1)
		slots := s.activeSlots()
		if keep > 0 && keep < len(slots) {
			slots = slots[:keep]
		}
		s.roll(slots, parallel, progress, rolled)
		s.forward(rolled, func(err error) {
			if err != nil && app != nil && s.app == app {
				s.app = old
				s.policy = PolicyFor(old)
			}
			reply <- err
		})
	})
	if err != nil {
		return err
	}
	return s.await(reply)
}

// await returns what reply gets, or ErrStopped once the supervisor is gone.
func (s *Supervisor) await(reply <-chan error) error {
	select {
	case err := <-reply:
		return err
	case <-s.done:
		return ErrStopped
	}
}

// forward calls fn on the supervisor goroutine with the one value ch gets
// (sent there by the roll, also on the supervisor goroutine, or at once).
func (s *Supervisor) forward(ch <-chan error, fn func(error)) {
	select {
	case err := <-ch:
		fn(err)
		return
	default:
	}
	go func() {
		select {
		case err := <-ch:
			s.do(func() { fn(err) })
		case <-s.done:
		}
	}()
}

// App returns the configuration the supervisor runs now.
func (s *Supervisor) App() *config.App {
	a, err := call(s, func() *config.App { return s.app })
	if err != nil {
		return s.opts.App
	}
	return a
}

// Halted reports whether the app was stopped by request.
func (s *Supervisor) Halted() bool {
	h, _ := call(s, func() bool { return s.halted })
	return h
}

// SlotInfo describes one slot for `launch describe`.
type SlotInfo struct {
	Instance int             `json:"instance"`
	Restarts int             `json:"restarts"`
	Unstable int             `json:"unstable"`
	Log      []RestartRecord `json:"restart_log"`
	ByReason map[string]int  `json:"restarts_by_reason"`
	// LastExit is how the slot's last process ended; nil if none has.
	LastExit *workers.ExitStatus `json:"-"`
}

// Slots returns each active slot's restart history.
func (s *Supervisor) Slots() []SlotInfo {
	out, _ := call(s, func() []SlotInfo {
		var out []SlotInfo
		for _, sl := range s.activeSlots() {
			si := SlotInfo{Instance: sl.index, Restarts: sl.hist.Restarts, Unstable: sl.hist.Unstable,
				Log: slices.Clone(sl.hist.Log), ByReason: maps.Clone(sl.hist.ByReason)}
			if e := sl.w.lastExit; e != nil {
				c := *e
				si.LastExit = &c
			}
			out = append(out, si)
		}
		return out
	})
	return out
}
