package recovery

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/workers"
)

func reuseportApp(env map[string]string) *config.App {
	app := testApp("web", "serve-fd3", env)
	app.Balance = config.BalanceReusePort
	return app
}

// listeners counts sockets listening on the TCP port (what `ss -ltn` shows).
func listeners(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" {
			n++
		}
	}
	return n
}

// fd3 is the socket inode a worker holds as fd 3 ("socket:[123]").
func fd3(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
	return s
}

// allStopped reports whether every thread of pid is stopped (state T).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) == 0 || f[0] != "T" {
			return false
		}
	}
	return true
}

// load sends one request per new connection until stop, counting
// answers per pid and failures.
type load struct {
	served, failed atomic.Int64
	mu             sync.Mutex
	perPID         map[string]int
	errs           []string
	stop           chan struct{}
	wg             sync.WaitGroup
}

func startLoad(addr string, clients int) *load {
	l := &load{perPID: map[string]int{}, stop: make(chan struct{})}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < 20000; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				line, err := ask(addr)
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.served.Add(1)
					l.perPID[strings.Fields(line)[0]]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

func TestReusePortSocketPerSlot(t *testing.T) {
	r := start(t, reuseportApp(nil), 2)
	eventually(t, 10*time.Second, "2 online", func() bool { return allOnline(r.sup, 2) })
	var port int
	fmt.Sscanf(r.addr[strings.LastIndexByte(r.addr, ':')+1:], "%d", &port)
	if n := listeners(t, port); n != 2 {
		t.Errorf("%d listening sockets on port %d, want 2 (one per worker)", n, port)
	}
	ws := r.sup.Workers()
	if a, b := fd3(ws[0].PID), fd3(ws[1].PID); a == "" || a == b {
		t.Errorf("workers share fd 3 (%q, %q), want a socket each", a, b)
	}
	l := startLoad(r.addr, 4)
	time.Sleep(500 * time.Millisecond)
	l.end()
	if len(l.perPID) != 2 || l.failed.Load() > 0 {
		t.Errorf("new connections per worker %v, %d failed; want both workers to serve", l.perPID, l.failed.Load())
	}

	// SIGKILL one worker while connections wait in its socket's queue:
	// its replacement inherits the same socket and answers them. The
	// worker is stopped (SIGSTOP) while idle first, so that none of them
	// has been accepted by it: a connection a process has accepted dies
	// with the process, whatever the launcher does.
	inode := fd3(ws[0].PID)
	if err := syscall.Kill(ws[0].PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// kill returns before the signal is taken: wait until every thread
	// shows as stopped, or one could still accept a connection.
	eventually(t, 5*time.Second, "worker 0 stopped", func() bool { return allStopped(ws[0].PID) })
	const queued = 20
	answers := make(chan error, queued)
	for i := 0; i < queued; i++ {
		go func() {
			_, err := askWithin(r.addr, 20*time.Second)
			answers <- err
		}()
	}
	early := 0
	for wait := time.After(500 * time.Millisecond); ; {
		select {
		case err := <-answers:
			if err != nil {
				t.Errorf("before the kill: %v", err)
			}
			early++
			continue
		case <-wait:
		}
		break
	}
	if early == queued {
		t.Fatalf("all %d connections were answered by worker 1; none queued on the stopped worker's socket", queued)
	}
	syscall.Kill(ws[0].PID, syscall.SIGKILL)
	eventually(t, 10*time.Second, "replaced", func() bool {
		w := r.sup.Workers()
		return allOnline(r.sup, 2) && w[0].PID != ws[0].PID
	})
	for i := early; i < queued; i++ {
		if err := <-answers; err != nil {
			t.Errorf("a connection queued on the killed worker's socket: %v", err)
		}
	}
	if got := fd3(r.sup.Workers()[0].PID); got != inode {
		t.Errorf("replacement holds %s, want the slot's socket %s", got, inode)
	}

	// A rolling replacement under load fails nothing.
	l = startLoad(r.addr, 4)
	if err := r.sup.ReplaceAll(); err != nil {
		t.Fatal(err)
	}
	l.end()
	if l.failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during the roll: %v", l.failed.Load(), l.served.Load()+l.failed.Load(), l.errs)
	}
}

// TestReusePortErroredSlotPaused: one of two instances crash-loops to
// errored; afterwards every new connection is answered by the other.
func TestReusePortErroredSlotPaused(t *testing.T) {
	app := reuseportApp(map[string]string{"CRASH_INSTANCE": "1"})
	app.MaxRestarts = 3
	app.RestartDelay = 20 * time.Millisecond
	r := start(t, app, 2)
	eventually(t, 10*time.Second, "instance 1 errored", func() bool {
		ws := r.sup.Workers()
		return len(ws) == 2 && ws[0].State == workers.Online && ws[1].State == workers.Errored
	})
	if !r.rec.has(Note, "web.1: no worker for a while: paused its socket") {
		t.Errorf("errored slot not paused:\n%s", r.rec)
	}
	l := startLoad(r.addr, 4)
	time.Sleep(time.Second)
	l.end()
	if l.failed.Load() > 0 || l.served.Load() < 100 || len(l.perPID) != 1 {
		t.Errorf("after errored: %d served by %v, %d failed (%v); want all served by the live worker", l.served.Load(), l.perPID, l.failed.Load(), l.errs)
	}
}

// TestReusePortScale: 2 → 4 → 1 under load. Connections queued on a
// removed slot's socket are reset unless net.ipv4.tcp_migrate_req is on;
// the test reports the count and requires zero only with migration.
func TestReusePortScale(t *testing.T) {
	r := start(t, reuseportApp(nil), 2)
	eventually(t, 10*time.Second, "2 online", func() bool { return allOnline(r.sup, 2) })
	l := startLoad(r.addr, 4)
	r.sup.Scale(4)
	eventually(t, 10*time.Second, "4 online", func() bool { return allOnline(r.sup, 4) })
	time.Sleep(300 * time.Millisecond)
	r.sup.Scale(1)
	eventually(t, 10*time.Second, "1 left", func() bool { return allOnline(r.sup, 1) })
	time.Sleep(300 * time.Millisecond)
	l.end()
	var port int
	fmt.Sscanf(r.addr[strings.LastIndexByte(r.addr, ':')+1:], "%d", &port)
	if n := listeners(t, port); n != 1 {
		t.Errorf("%d listening sockets after scaling to 1, want 1", n)
	}
	t.Logf("scale 2→4→1 under load: %d served, %d failed (tcp_migrate_req on: %v)", l.served.Load(), l.failed.Load(), migrateReq())
	if migrateReq() && l.failed.Load() > 0 {
		t.Errorf("%d requests failed with tcp_migrate_req on: %v", l.failed.Load(), l.errs)
	}
}
