package recovery

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/workers"
)

// TestHaltDuringReload: `launch stop` while a roll runs ends the roll; no
// slot of the stopped app gets a new worker, and the stop's wait ends.
func TestHaltDuringReload(t *testing.T) {
	app := testApp("web", "ignore-term", nil)
	app.Listen, app.ExecMode, app.KillTimeout = nil, config.ExecFork, 400*time.Millisecond
	r := start(t, app, 3)
	eventually(t, 10*time.Second, "3 online", func() bool { return allOnline(r.sup, 3) })
	rolled := make(chan error, 1)
	go func() { rolled <- r.sup.Reload(nil, 1, 0, nil) }()
	time.Sleep(150 * time.Millisecond) // the first old worker is stopping
	done, err := r.sup.Halt()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rolled:
		if err == nil {
			t.Error("the reload succeeded although the app was stopped during it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reload did not end")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Halt's wait did not end: %+v", r.sup.Workers())
	}
	time.Sleep(300 * time.Millisecond)
	for _, w := range r.sup.Workers() {
		if w.PID != 0 || w.State != workers.Stopped {
			t.Errorf("after stop during a reload: %+v", w)
		}
	}
}

// TestFailedReloadKeepsOldSettings: after a roll that failed, restarts use
// the settings the app had, not the rejected ones.
func TestFailedReloadKeepsOldSettings(t *testing.T) {
	app := testApp("web", "serve-fd3", nil)
	r := start(t, app, 2)
	eventually(t, 10*time.Second, "2 online", func() bool { return allOnline(r.sup, 2) })
	bad := testApp("web", "exit", map[string]string{"EXIT_CODE": "3"})
	bad.Listen = app.Listen
	if err := r.sup.Reload(bad, 1, 0, nil); err == nil {
		t.Fatal("a reload onto a build that exits succeeded")
	}
	if r.sup.App() != app {
		t.Fatal("the rejected settings stayed in force")
	}
	ws := r.sup.Workers()
	syscall.Kill(ws[1].PID, syscall.SIGKILL)
	eventually(t, 10*time.Second, "the killed worker back online with the old build", func() bool {
		w := r.sup.Workers()
		return allOnline(r.sup, 2) && w[1].PID != ws[1].PID
	})
}

// threadNices reads the nice value (field 19 of stat) of every thread of pid.
func threadNices(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		n, _ := strconv.Atoi(f[16]) // fields after the name start at state (3): nice is 19
		out = append(out, n)
	}
	return out
}

// TestStartNice: with start_nice a worker's threads run below the
// master's priority until it is ready, then at the master's.
func TestStartNice(t *testing.T) {
	if ok, err := workers.CanRestoreNice(); !ok {
		t.Skip("this process may not raise a priority back:", err)
	}
	b, _ := os.ReadFile("/proc/self/stat")
	base, _ := strconv.Atoi(strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))[16])
	app := testApp("web", "sleep", nil)
	app.Ready = config.Ready{Kind: config.ReadyDelay, Delay: 1500 * time.Millisecond}
	app.StartNice = 7
	r := start(t, app, 1)
	eventually(t, 5*time.Second, "a worker past the trampoline", func() bool {
		ws := r.sup.Workers()
		if len(ws) != 1 || ws[0].PID == 0 {
			return false
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ws[0].PID))
		return len(cmd) > 0 && !strings.Contains(string(cmd), workers.TrampolineArg) && len(threadNices(t, ws[0].PID)) > 1
	})
	pid := r.sup.Workers()[0].PID
	if r.sup.Workers()[0].State != workers.Launching {
		t.Fatalf("worker %s before its ready delay", r.sup.Workers()[0].State)
	}
	for _, n := range threadNices(t, pid) {
		if n != min(19, base+7) {
			t.Errorf("while starting: thread nices %v, want all %d", threadNices(t, pid), min(19, base+7))
			break
		}
	}
	eventually(t, 5*time.Second, "online", func() bool { return allOnline(r.sup, 1) })
	for _, n := range threadNices(t, pid) {
		if n != base {
			t.Errorf("once ready: thread nices %v, want all %d", threadNices(t, pid), base)
			break
		}
	}
}

// TestStartNiceRaisedAtHalfListenTimeout: a worker still not ready at half
// its listen_timeout runs at the master's priority from then on.
func TestStartNiceRaisedAtHalfListenTimeout(t *testing.T) {
	if ok, err := workers.CanRestoreNice(); !ok {
		t.Skip("this process may not raise a priority back:", err)
	}
	app := testApp("web", "sleep", nil)
	app.Ready = config.Ready{Kind: config.ReadyDelay, Delay: 3 * time.Second}
	app.ListenTimeout = 4 * time.Second
	app.StartNice = 7
	r := start(t, app, 1)
	eventually(t, 5*time.Second, "raised at 2 s", func() bool {
		return r.rec.has(Note, "not ready after half its listen_timeout (2s): raised")
	})
	w := r.sup.Workers()[0]
	if w.State != workers.Launching {
		t.Fatalf("worker %s, want still launching", w.State)
	}
	b, _ := os.ReadFile("/proc/self/stat")
	base, _ := strconv.Atoi(strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))[16])
	for _, n := range threadNices(t, w.PID) {
		if n != base {
			t.Errorf("after the raise: thread nices %v, want all %d", threadNices(t, w.PID), base)
			break
		}
	}
}
