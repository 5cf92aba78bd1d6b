package workers

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
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
// RestoreNice raises every thread of every process in the worker's group.
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
	var first error
	// Twice: a thread created while the first pass ran may have copied
	// its creator's low priority.
	for range 2 {
		for _, pid := range groupMembers(p.PID) {
			tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
			if err != nil {
				continue // gone
			}
			for _, t := range tasks {
				tid, err := strconv.Atoi(t.Name())
				if err != nil {
					continue
				}
				err = unix.Setpriority(unix.PRIO_PROCESS, tid, p.baseNice)
				if err != nil && !errors.Is(err, unix.ESRCH) && first == nil {
					first = fmt.Errorf("raise pid %d thread %d to nice %d: %w", pid, tid, p.baseNice, err)
				}
			}
		}
	}
	return first
}

// groupMembers lists the processes whose process group is pgid.
func groupMembers(pgid int) []int {
	names, err := readDirNames("/proc")
	if err != nil {
		return []int{pgid}
	}
	var out []int
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if g, err := unix.Getpgid(pid); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
