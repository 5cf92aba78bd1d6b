package workers

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Starting a worker costs CPU (a Node worker parses and compiles its code
// for a few hundred milliseconds), and on a small machine under load that
// CPU comes out of the workers that are serving: their latency rises for
// every worker that starts, which is what a rolling reload does once per
// slot. With Spec.StartNice the worker starts that many nice levels below
// the master and is raised back to the master's level by RestoreNice when
// it is ready, so the serving workers keep the CPU while it boots.
//
// Nice values are per thread on Linux: the trampoline lowers its own
// thread before exec, every thread the app creates inherits that, and
// RestoreNice raises every thread of every process in the worker's group
// (setpriority PRIO_PGRP).
// Raising a priority back needs CAP_SYS_NICE or a high enough RLIMIT_NICE,
// which CanRestoreNice checks once; without it, StartNice is not used (a
// worker stuck below the others would be worse than a slow reload).

// currentNice is the calling thread's nice value.
func currentNice() (int, error) {
	// The raw system call returns 20 - nice, so that it is never negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, fmt.Errorf("getpriority: %w", err)
	}
	return 20 - p, nil
}

var restoreNice struct {
	once sync.Once
	ok   bool
	err  error
}

// CanRestoreNice reports whether this process may raise a thread's
// priority back after lowering it, which StartNice needs; when not, the
// error says why. It tries on a thread of its own, which then exits.
func CanRestoreNice() (bool, error) {
	restoreNice.once.Do(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			base, err := currentNice()
			if err != nil {
				restoreNice.err = err
				return
			}
			if base >= 19 {
				restoreNice.err = errors.New("the master already runs at nice 19")
				return
			}
			tid := unix.Gettid()
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, base+1); err != nil {
				restoreNice.err = fmt.Errorf("setpriority: %w", err)
				return
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, base); err != nil {
				restoreNice.err = fmt.Errorf("raising a thread back to nice %d: %w (needs root with CAP_SYS_NICE, or RLIMIT_NICE ≥ %d)", base, err, 20-base)
				return
			}
			restoreNice.ok = true
		}()
		<-done
	})
	return restoreNice.ok, restoreNice.err
}

// RestoreNice raises every thread of the worker's process group back to
// the master's nice value, if the worker started lower (Spec.StartNice).
// It does nothing the second time. Call it from one goroutine.
func (p *Process) RestoreNice() error {
	if !p.niced {
		return nil
	}
	p.niced = false
	// PRIO_PGRP: the kernel sets every thread of every process in the
	// group, under one lock, so none created meanwhile is missed.
	if err := unix.Setpriority(unix.PRIO_PGRP, p.PID, p.baseNice); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("raise process group %d to nice %d: %w", p.PID, p.baseNice, err)
	}
	return nil
}

// HasCapSysNice reports whether this process has CAP_SYS_NICE in its
// effective set: raising the priority of a worker that runs as another
// user needs it, whatever RLIMIT_NICE says. /proc is read once: every
// start of such a worker asks.
func HasCapSysNice() bool { return hasCapSysNice() }

var hasCapSysNice = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_NICE) != 0
		}
	}
	return false
})
