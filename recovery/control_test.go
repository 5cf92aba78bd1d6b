package recovery

import (
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
