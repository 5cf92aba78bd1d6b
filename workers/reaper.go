package workers

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExitStatus is how a worker's main process ended.
type ExitStatus struct {
	PID int
	// Code is the exit code, or -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, or 0.
	Signal syscall.Signal
	// Lost is true when the master never saw the process's status
	// (another waiter took it); the worker's state is then Unknown.
	Lost bool
	// At is when the master reaped the process.
	At time.Time
	// CPU is user+system time of the process and its reaped descendants.
	CPU time.Duration
	// StartErr, when set, says the worker never ran: the start itself
	// failed (set by the supervisor, not the reaper).
	StartErr string
}

// Success reports whether the process exited 0.
func (e ExitStatus) Success() bool { return !e.Lost && e.Signal == 0 && e.Code == 0 }

// String reads like "exit code 1", "killed by SIGKILL" or "lost".
func (e ExitStatus) String() string {
	switch {
	case e.StartErr != "":
		return "failed to start: " + e.StartErr
	case e.Lost:
		return "exit status lost"
	case e.Signal != 0:
		return "killed by " + SignalName(e.Signal)
	default:
		return fmt.Sprintf("exit code %d", e.Code)
	}
}

// SignalName returns "SIGTERM" for syscall.SIGTERM.
func SignalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Reaper owns every wait in the process (design §4): one goroutine, woken by
// SIGCHLD, reaps all children with waitid/wait4 and routes each status to
// the Process registered under its pid. Nothing else may wait for children:
// a second waiter (os/exec's Cmd.Wait) would steal statuses and turn live
// workers into Unknown ones.
//
// The master is a child subreaper, so orphaned grandchildren are re-parented
// to it and reaped here too; their statuses are discarded.
//
// Before reaping a registered process, the reaper SIGKILLs its process group:
// while the leader is a zombie its pid cannot be reused, so the group kill
// cannot hit a stranger. A worker's process group therefore never outlives
// its main process.
type Reaper struct {
	mu    sync.Mutex
	procs map[int]*Process // guarded by mu; live registered children
	// orphans counts reaped processes nobody registered (grandchildren).
	orphans int

	sigc chan os.Signal
	stop chan struct{}
	done chan struct{}
}

var (
	reaperOnce sync.Once
	reaperErr  error
	theReaper  *Reaper
)

// StartReaper makes this process a child subreaper and starts its one
// reaper goroutine. It returns the same Reaper on every call; there can
// only be one per process.
func StartReaper() (*Reaper, error) {
	reaperOnce.Do(func() {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			reaperErr = fmt.Errorf("become child subreaper: %w", err)
			return
		}
		r := &Reaper{
			procs: make(map[int]*Process),
			sigc:  make(chan os.Signal, 1),
			stop:  make(chan struct{}),
			done:  make(chan struct{}),
		}
		signal.Notify(r.sigc, syscall.SIGCHLD)
		go r.loop()
		theReaper = r
	})
	return theReaper, reaperErr
}

// loop is the reaper goroutine. It exits when Stop is called.
func (r *Reaper) loop() {
	defer close(r.done)
	// A slow tick backs up SIGCHLD: signals coalesce, and a status that
	// arrives between the last waitid and signal delivery is still seen.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.reapAll()
		select {
		case <-r.sigc:
		case <-tick.C:
		case <-r.stop:
			return
		}
	}
}

// Stop ends the reaper goroutine (for tests); the process stays a subreaper.
// Registered processes no longer get their statuses.
func (r *Reaper) Stop() {
	r.mu.Lock()
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.mu.Unlock()
	<-r.done
	signal.Stop(r.sigc)
	reaperOnce = sync.Once{}
	theReaper = nil
}

// Orphans returns how many unregistered children (re-parented
// grandchildren) the reaper has reaped.
func (r *Reaper) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// siginfo is the head of Linux's siginfo_t for SIGCHLD, as waitid fills it.
type siginfo struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Pid    int32
	Uid    uint32
	Status int32
}

// peek returns the pid of a child that has exited, without reaping it,
// or 0 when none has.
func peek() (int, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		si := (*siginfo)(unsafe.Pointer(&info))
		return int(si.Pid), nil
	}
}

// reapAll reaps every child that has exited. Statuses are delivered after
// the lock is released, so a Process's waiters never run under it.
func (r *Reaper) reapAll() {
	var reaped []*Process
	r.mu.Lock()
	for {
		pid, err := peek()
		if errors.Is(err, unix.ECHILD) {
			// No children at all: any process still registered was
			// reaped by someone else. Its status is lost.
			for p, proc := range r.procs {
				proc.status = ExitStatus{PID: p, Code: -1, Lost: true, At: time.Now()}
				reaped = append(reaped, proc)
				delete(r.procs, p)
			}
			break
		}
		if err != nil || pid == 0 {
			break
		}
		proc := r.procs[pid]
		if proc != nil {
			// The leader is a zombie: its pid (the group id) cannot be
			// reused yet, so this reaches only what is left of its group.
			_ = unix.Kill(-pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		var ru unix.Rusage
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, &ru)
		if err != nil || got != pid {
			continue
		}
		if proc == nil {
			r.orphans++
			continue
		}
		delete(r.procs, pid)
		proc.status = statusOf(pid, ws, &ru)
		reaped = append(reaped, proc)
	}
	r.mu.Unlock()
	for _, p := range reaped {
		p.exited()
	}
}

func statusOf(pid int, ws unix.WaitStatus, ru *unix.Rusage) ExitStatus {
	s := ExitStatus{PID: pid, Code: ws.ExitStatus(), At: time.Now()}
	if ws.Signaled() {
		s.Signal = syscall.Signal(ws.Signal())
		s.Code = -1
	}
	s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return s
}

// register records a freshly forked child. The caller holds r.mu across
// fork and register, so the reaper cannot reap the pid in between.
func (r *Reaper) registerLocked(p *Process) {
	r.procs[p.PID] = p
}

// signalGroup sends sig to p's process group unless p has been reaped,
// under the lock that reaping takes, so a reused pid is never signalled.
func (r *Reaper) signalGroup(p *Process, sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.procs[p.PID] != p {
		return os.ErrProcessDone
	}
	if err := unix.Kill(-p.PID, sig); err != nil {
		return fmt.Errorf("signal %s to process group %d: %w", SignalName(sig), p.PID, err)
	}
	return nil
}
