package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/launch-go/launch/bench"
)

// stopGrace bounds a master's graceful stop before SIGKILL: above the
// default kill_timeout (5s) and the example apps' drain (1.8s).
const stopGrace = 10 * time.Second

// benchOne measures the app at n instances: start a master, wait until it
// is ready, warm up, load (with reloads or chaos if asked), stop it.
func benchOne(ctx context.Context, o benchOptions, p *benchPlan, n int, show func(string, *bench.Progress, time.Duration)) (bench.Row, error) {
	show("starting", nil, 0)
	m, err := startBenchMaster(p.exe, p.args(n), p.notifyDir, p.appCPUs)
	if err != nil {
		return bench.Row{}, err
	}
	defer m.stop(stopGrace)
	if err := m.waitReady(o.readyTimeout, ctx.Done()); err != nil {
		return bench.Row{}, err
	}

	load := bench.Load{URL: p.url, Conns: o.conns, NewConn: o.newConn, Rate: o.rate, Timeout: o.timeout}
	// One request first: a target that refuses or fails is reported at
	// once, rather than after a warm-up of errors as fast as they come.
	probe := bench.Load{URL: p.url, Conns: 1, MaxRequests: 1, Duration: o.timeout, Timeout: o.timeout}
	if res, err := probe.Run(ctx); err != nil {
		return bench.Row{}, err
	} else if err := checkAnswered(res, m, "first request"); err != nil {
		return bench.Row{}, err
	}
	if o.warmup > 0 {
		show("warming up", nil, 0)
		w := load
		w.Duration = o.warmup
		res, err := w.Run(ctx)
		if err != nil {
			return bench.Row{}, err
		}
		if err := checkAnswered(res, m, "warm-up"); err != nil {
			return bench.Row{}, err
		}
	}
	if ctx.Err() != nil {
		return bench.Row{}, errInterrupted
	}

	load.Duration = o.duration
	load.Progress = func(pr bench.Progress) { show("measuring", &pr, o.duration) }
	var window atomic.Bool
	if o.reload > 0 {
		load.Window = &window
	}
	seen := &pidSet{pids: map[int]bool{}}
	if o.chaos {
		load.SeenPID = seen.add
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var reload bench.ReloadStats
	var chaos bench.ChaosStats
	if o.reload > 0 {
		wg.Go(func() { reload = m.reloads(runCtx, o.reload, o.duration, &window) })
	}
	if o.chaos {
		wg.Go(func() { chaos = chaosKills(runCtx, m.pid(), o.chaosInterval, seen) })
	}
	res, err := load.Run(runCtx)
	cancel()
	wg.Wait()
	if err != nil {
		return bench.Row{}, err
	}
	if ctx.Err() != nil {
		return bench.Row{}, errInterrupted
	}
	if err := checkAnswered(res, m, "load"); err != nil {
		return bench.Row{}, err
	}
	row := bench.NewRow(n, res)
	if o.reload > 0 {
		reload.During, reload.Steady = bench.NewPhaseRow(res.Window), bench.NewPhaseRow(res.Steady)
		row.Reload = &reload
	}
	if o.chaos {
		chaos.Availability = res.Availability()
		row.Chaos = &chaos
	}
	return row, nil
}

// checkAnswered fails a run in which no request got a 2xx answer: its
// figures would be zeros, not a measurement.
func checkAnswered(res bench.Result, m *benchMaster, what string) error {
	if res.OK() > 0 {
		return nil
	}
	why := fmt.Sprintf("%d socket errors or timeouts, %d non-2xx answers", res.Errors, res.Non2xx)
	if len(res.FirstErrors) > 0 {
		why = res.FirstErrors[0] + "; " + why
	}
	return fmt.Errorf("no request succeeded (%s: %s); the master's output ends with:\n%s", what, why, m.outputTail())
}

// reloads sends n SIGHUPs to the master, spread over the run (the i-th at
// duration·i/(n+1), never while one is still going), and holds window
// true from each SIGHUP until the reload ends: RELOADING=1 then READY=1
// on the notify socket (systemd's Type=notify-reload), or, from a master
// that does not send RELOADING=1, its "reload done" / "reload failed"
// log line.
func (m *benchMaster) reloads(ctx context.Context, n int, duration time.Duration, window *atomic.Bool) bench.ReloadStats {
	st := bench.ReloadStats{Signal: "log", Seconds: []float64{}}
	start := time.Now()
	sdNotify := false // seen RELOADING=1: from then on only sd_notify ends a reload
	failedLogs := 0
	states := m.states // nil once closed
	for i := 1; i <= n; i++ {
		at := start.Add(duration * time.Duration(i) / time.Duration(n+1))
		select {
		case <-ctx.Done():
			return st
		case <-time.After(time.Until(at)):
		}
		// Log lines of the previous reload that came after its READY=1.
		for drained := false; !drained; {
			select {
			case ev := <-m.logs:
				if ev == "reload failed" {
					failedLogs++
				}
			default:
				drained = true
			}
		}
		window.Store(true)
		t0 := time.Now()
		if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			window.Store(false)
			return st
		}
		st.Requested++
		reloading, ended := false, false
		for !ended {
			select {
			case s, ok := <-states:
				if !ok {
					states = nil
					continue
				}
				switch s {
				case "RELOADING=1":
					reloading, sdNotify = true, true
					st.Signal = "sd_notify"
				case "READY=1":
					if reloading {
						ended = true
						st.Completed++
					}
				}
			case ev := <-m.logs:
				if ev == "reload failed" {
					failedLogs++
				}
				if !sdNotify {
					ended = true
					if ev == "reload done" {
						st.Completed++
					}
				}
			case <-m.exited:
				window.Store(false)
				st.Failed = failedLogs
				return st
			case <-ctx.Done():
				window.Store(false)
				st.Failed = failedLogs
				return st
			}
		}
		window.Store(false)
		st.Seconds = append(st.Seconds, float64(time.Since(t0).Milliseconds())/1000)
	}
	st.Failed = failedLogs
	return st
}

// pidSet is the worker pids seen in X-Pid headers; safe for concurrent
// use.
type pidSet struct {
	mu   sync.Mutex
	pids map[int]bool
}

func (s *pidSet) add(pid string) {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 1 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pids[n] = true
}

func (s *pidSet) list() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.pids))
	for p := range s.pids {
		out = append(out, p)
	}
	return out
}

func (s *pidSet) remove(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pids, pid)
}

// chaosKills SIGKILLs one random worker every interval until ctx is done.
// A worker is a pid seen in an X-Pid header that is, per /proc, a live
// descendant of the master we started; nothing else is ever signalled.
func chaosKills(ctx context.Context, master int, interval time.Duration, seen *pidSet) bench.ChaosStats {
	st := bench.ChaosStats{IntervalS: interval.Seconds(), Killed: []int{}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return st
		case <-t.C:
		}
		pids := seen.list()
		rand.Shuffle(len(pids), func(i, j int) { pids[i], pids[j] = pids[j], pids[i] })
		for _, pid := range pids {
			if !bench.IsDescendant(pid, master) {
				seen.remove(pid) // gone (killed, replaced) or not ours
				continue
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				st.Killed = append(st.Killed, pid)
				seen.remove(pid)
			}
			break
		}
	}
}
