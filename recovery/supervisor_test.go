package recovery

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/launch-go/launch/balancer"
	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/internal/helperproc"
	"github.com/launch-go/launch/workers"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workers.TrampolineArg {
		workers.Trampoline(os.Args[2:])
	}
	helperproc.Run()
	code := m.Run()
	if testSpawner != nil {
		testSpawner.Close()
		testReaper.Stop()
		os.RemoveAll(testDir)
	}
	helperproc.Exit(code)
}

var (
	testReaper  *workers.Reaper
	testSpawner *workers.Spawner
	testDir     string
)

func spawner(t *testing.T) *workers.Spawner {
	t.Helper()
	if testSpawner == nil {
		r, err := workers.StartReaper()
		if err != nil {
			t.Fatal(err)
		}
		testDir, _ = os.MkdirTemp("", "lr-")
		testReaper, testSpawner = r, workers.NewSpawner(r, os.Args[0], testDir)
	}
	return testSpawner
}

// testApp is an app that runs helper h of this test binary.
func testApp(name, h string, env map[string]string) *config.App {
	e := map[string]string{helperproc.Env: h}
	for k, v := range env {
		e[k] = v
	}
	return &config.App{
		Name: name, Command: os.Args[0], Args: helperproc.Args(), Dir: os.TempDir(),
		Env: e, Autorestart: true, MaxRestarts: 16, MinUptime: time.Second,
		KillTimeout: time.Second, ListenTimeout: 3 * time.Second,
		Ready: config.Ready{Kind: config.ReadyNotify}, StopSignal: syscall.SIGTERM,
		Balance: config.BalanceShared, ExecMode: config.ExecCluster,
		Listen: []config.Listen{{Network: config.TCP, Address: "127.0.0.1:0"}},
	}
}

// recorder collects a supervisor's events.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) notify(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) has(kind EventKind, substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Kind == kind && strings.Contains(ev.Msg+ev.Transition.String(), substr) {
			return true
		}
	}
	return false
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.events {
		if ev.Kind == Transition {
			fmt.Fprintln(&b, ev.Transition)
		} else {
			fmt.Fprintf(&b, "[%d] %s\n", ev.Kind, ev.Msg)
		}
	}
	return b.String()
}

type running struct {
	sup  *Supervisor
	rec  *recorder
	addr string
	reg  *balancer.Registry
}

func start(t *testing.T, app *config.App, n int) *running {
	t.Helper()
	reg := balancer.NewRegistry()
	set, err := reg.Bind(app)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	var sockets Sockets
	if set.Len() > 0 {
		sockets = set
	}
	r := &running{rec: rec, addr: set.String(), reg: reg}
	r.sup = Start(Options{App: app, Instances: n, Sockets: sockets, Starter: spawner(t), Environ: os.Environ(), Notify: rec.notify})
	t.Cleanup(func() {
		r.sup.Stop()
		select {
		case <-r.sup.Done():
		case <-time.After(10 * time.Second):
			r.sup.Kill()
			<-r.sup.Done()
			t.Error("supervisor did not stop within 10s")
		}
		reg.Close()
	})
	return r
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func allOnline(s *Supervisor, n int) bool {
	ws := s.Workers()
	if len(ws) != n {
		return false
	}
	for _, w := range ws {
		if w.State != workers.Online {
			return false
		}
	}
	return true
}

func ask(addr string) (string, error) { return askWithin(addr, 3*time.Second) }

// askWithin is ask with a deadline for the whole exchange.
func askWithin(addr string, d time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	return bufio.NewReader(c).ReadString('\n')
}

func pids(s *Supervisor) map[int]bool {
	out := map[int]bool{}
	for _, w := range s.Workers() {
		out[w.PID] = true
	}
	return out
}

func TestStartServeStop(t *testing.T) {
	r := start(t, testApp("web", "serve-fd3", nil), 2)
	eventually(t, 10*time.Second, "2 workers online", func() bool { return allOnline(r.sup, 2) })
	if !r.rec.has(AppReady, "2 of 2") {
		t.Errorf("no AppReady event:\n%s", r.rec)
	}
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 2; i++ {
		line, err := ask(r.addr)
		if err != nil {
			t.Fatal(err)
		}
		seen[strings.Fields(line)[0]] = true
	}
	if len(seen) != 2 {
		t.Errorf("200 connections reached %d workers, want 2", len(seen))
	}
	r.sup.Stop()
	<-r.sup.Done()
	for pid := range pids(r.sup) {
		if pid != 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d alive after Stop", pid)
		}
	}
}

func TestCrashRestartKeepsSocket(t *testing.T) {
	app := testApp("web", "serve-fd3", nil)
	app.ExpBackoffRestartDelay = 50 * time.Millisecond
	r := start(t, app, 1)
	eventually(t, 10*time.Second, "online", func() bool { return allOnline(r.sup, 1) })
	old := r.sup.Workers()[0].PID
	syscall.Kill(old, syscall.SIGKILL)
	// While the only worker is dead, a connection waits in the queue
	// and is answered by the replacement: nothing is refused.
	line, err := ask(r.addr)
	if err != nil {
		t.Fatalf("connection during restart: %v", err)
	}
	if strings.Contains(line, fmt.Sprintf("pid=%d ", old)) {
		t.Errorf("answered by the killed worker: %q", line)
	}
	eventually(t, 10*time.Second, "back online", func() bool { return allOnline(r.sup, 1) })
	if w := r.sup.Workers()[0]; w.Restarts != 1 || w.LastExit != "killed by SIGKILL" {
		t.Errorf("after one crash: %+v", w)
	}
}

func TestCrashLoopErroredThenRefused(t *testing.T) {
	app := testApp("crashy", "exit", map[string]string{"EXIT_CODE": "1"})
	app.MaxRestarts = 3
	app.RestartDelay = 20 * time.Millisecond
	app.ExpBackoffRestartDelay = 0
	r := start(t, app, 1)
	eventually(t, 10*time.Second, "errored", func() bool {
		ws := r.sup.Workers()
		return len(ws) == 1 && ws[0].State == workers.Errored
	})
	if !r.rec.has(AppErrored, "every worker") {
		t.Errorf("no AppErrored event:\n%s", r.rec)
	}
	if n := strings.Count(r.rec.String(), "→ launching"); n != 3 {
		t.Errorf("%d starts, want 3 (max_restarts 3):\n%s", n, r.rec)
	}
	// The app has no worker that will come back: connections are refused
	// at once rather than left hanging.
	startDial := time.Now()
	_, err := ask(r.addr)
	if err == nil || !strings.Contains(err.Error(), "refused") || time.Since(startDial) > time.Second {
		t.Errorf("connection to an errored app: err=%v after %s, want refused at once", err, time.Since(startDial))
	}
}

func TestKillTimeoutAndStopCodes(t *testing.T) {
	app := testApp("stubborn", "ignore-term", nil) // ready only once SIGTERM is ignored
	app.KillTimeout = 300 * time.Millisecond
	app.Listen = nil
	r := start(t, app, 1)
	eventually(t, 10*time.Second, "online", func() bool { return allOnline(r.sup, 1) })
	t0 := time.Now()
	r.sup.Stop()
	<-r.sup.Done()
	if el := time.Since(t0); el < 250*time.Millisecond || el > 5*time.Second {
		t.Errorf("stop took %s, want about kill_timeout (300ms)", el)
	}
	if !r.rec.has(Note, "did not exit within kill_timeout") || !r.rec.has(Transition, "stopping → stopped (killed by SIGKILL)") {
		t.Errorf("no SIGKILL after kill_timeout:\n%s", r.rec)
	}

	app = testApp("once", "exit", map[string]string{"EXIT_CODE": "0"})
	app.StopExitCodes = []int{0}
	app.Listen = nil
	r = start(t, app, 1)
	eventually(t, 10*time.Second, "stopped", func() bool {
		ws := r.sup.Workers()
		return len(ws) == 1 && ws[0].State == workers.Stopped
	})
}

func TestReplaceAllRolls(t *testing.T) {
	r := start(t, testApp("web", "serve-fd3", nil), 2)
	eventually(t, 10*time.Second, "2 online", func() bool { return allOnline(r.sup, 2) })
	before := pids(r.sup)
	// Light traffic through the whole roll: not one connection may fail.
	stop := make(chan struct{})
	var failed, served int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := ask(r.addr); err != nil {
				failed++
			} else {
				served++
			}
		}
	}()
	err := r.sup.ReplaceAll()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("ReplaceAll: %v", err)
	}
	after := pids(r.sup)
	for pid := range after {
		if before[pid] {
			t.Errorf("pid %d survived the roll", pid)
		}
	}
	if len(after) != 2 || !allOnline(r.sup, 2) {
		t.Errorf("after the roll: %+v", r.sup.Workers())
	}
	if failed > 0 {
		t.Errorf("%d of %d connections failed during the roll", failed, failed+served)
	}
}

func TestReplaceFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	flag := dir + "/broken"
	// The helper crashes at start when the flag file exists (a bad deploy).
	app := testApp("web", "serve-fd3", nil)
	app.Command = "/bin/sh"
	app.Args = []string{"-c", fmt.Sprintf("test -e %s && exit 9; exec %q %s", flag, os.Args[0], strings.Join(helperproc.Args(), " "))}
	r := start(t, app, 2)
	eventually(t, 10*time.Second, "2 online", func() bool { return allOnline(r.sup, 2) })
	before := pids(r.sup)
	os.WriteFile(flag, nil, 0o600)
	err := r.sup.ReplaceAll()
	if err == nil || !strings.Contains(err.Error(), "exit code 9") {
		t.Fatalf("ReplaceAll with a crashing build = %v, want the replacement's exit code 9", err)
	}
	if got := pids(r.sup); len(got) != 2 || !allOnline(r.sup, 2) || !got[firstKey(before)] {
		t.Errorf("old workers must keep serving: before %v, now %+v", before, r.sup.Workers())
	}
}

func firstKey(m map[int]bool) int {
	for k := range m {
		return k
	}
	return 0
}

func TestScale(t *testing.T) {
	r := start(t, testApp("web", "serve-fd3", nil), 1)
	eventually(t, 10*time.Second, "1 online", func() bool { return allOnline(r.sup, 1) })
	if err := r.sup.Scale(3); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "3 online", func() bool { return allOnline(r.sup, 3) })
	if err := r.sup.Scale(1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "back to 1", func() bool { return allOnline(r.sup, 1) })
	if err := r.sup.Scale(0); err == nil {
		t.Error("Scale(0) accepted")
	}
}

// pidsIn returns every pid the supervisor ever launched, from its events.
func (r *recorder) pidsLaunched() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, ev := range r.events {
		var pid int
		if ev.Kind == Transition && ev.Transition.To == workers.Launching {
			if _, err := fmt.Sscanf(ev.Transition.Reason, "pid %d", &pid); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// TestScaleDownDuringRoll: scaling down while a rolling replacement runs
// leaves no worker the supervisor does not track, and no slot behind.
func TestScaleDownDuringRoll(t *testing.T) {
	app := testApp("web", "serve-fd3", nil)
	r := start(t, app, 3)
	eventually(t, 10*time.Second, "3 online", func() bool { return allOnline(r.sup, 3) })
	rolled := make(chan error, 1)
	go func() { rolled <- r.sup.ReplaceAll() }()
	time.Sleep(20 * time.Millisecond)
	if err := r.sup.Scale(1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rolled:
		if err != nil {
			t.Fatalf("ReplaceAll: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ReplaceAll hung after a scale-down")
	}
	eventually(t, 10*time.Second, "1 slot", func() bool { return r.sup.Size() == 1 && allOnline(r.sup, 1) })
	// Scale up again: instance numbers stay unique.
	r.sup.Scale(3)
	eventually(t, 10*time.Second, "3 online", func() bool { return allOnline(r.sup, 3) })
	seen := map[int]bool{}
	for _, w := range r.sup.Workers() {
		if seen[w.Instance] {
			t.Errorf("two workers with instance %d: %+v", w.Instance, r.sup.Workers())
		}
		seen[w.Instance] = true
	}
	r.sup.Stop()
	<-r.sup.Done()
	for _, pid := range r.rec.pidsLaunched() {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d alive after the supervisor stopped (a worker it lost track of)", pid)
		}
	}
}
