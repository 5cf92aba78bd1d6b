package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// processCPU is the user + system CPU time this process has used so far
// (getrusage RUSAGE_SELF), 0 if the kernel will not say.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ParseCPUList reads a CPU list as taskset -c and /sys write them:
// "0", "2-3", "0,2-3". The result is sorted and without duplicates.
func ParseCPUList(s string) ([]int, error) {
	var set unix.CPUSet
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number or range like 2-3", s, part)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return cpuSetList(&set), nil
}

func cpuSetList(set *unix.CPUSet) []int {
	var out []int
	for c := range 1024 {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

func cpuSetOf(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// AllowedCPUs is the CPUs this process may run on (its affinity mask).
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return cpuSetList(&set), nil
}

// PinProcess restricts every thread of this process to cpus
// (sched_setaffinity on each task in /proc/self/task); threads created
// later inherit the mask from the thread that creates them.
func PinProcess(cpus []int) error {
	set := cpuSetOf(cpus)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin to CPUs %v: %w", cpus, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pin thread %d to CPUs %v: %w", tid, cpus, err)
		}
	}
	return nil
}

// PinThread restricts the calling OS thread to cpus and returns a
// function that restores its previous mask. The caller must hold the
// thread (runtime.LockOSThread) until it has restored it; a process it
// forks meanwhile inherits the mask, which is how `launch bench` gives
// the master (and so its workers) their CPUs without a race.
func PinThread(cpus []int) (restore func() error, err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, cpuSetOf(cpus)); err != nil {
		return nil, fmt.Errorf("pin to CPUs %v: %w", cpus, err)
	}
	return func() error { return unix.SchedSetaffinity(0, &old) }, nil
}

// GeneratorProcs is the GOMAXPROCS a load generator should run with when
// it shares cpus CPUs with the server it loads: one per four CPUs, at
// least one. Go's idle Ps spin looking for work before they sleep, and on
// a small machine that spinning takes CPU from the server being measured.
// On 2 vCPUs against PM2 with 2 workers, GOMAXPROCS=1 measured 9.3k and
// 17.0k req/s in two rounds, GOMAXPROCS=2 6.0k and 11.5k, wrk -t1 11.8k
// and 16.3k; one P sends 50-100k req/s, so big machines get more.
func GeneratorProcs(cpus int) int { return max(1, cpus/4) }
