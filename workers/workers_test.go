package workers

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTransitions(t *testing.T) {
	legal := []struct{ from, to State }{
		{None, Launching}, {Launching, Online}, {Launching, WaitingRestart}, {Online, Stopping},
		{Stopping, Stopped}, {WaitingRestart, Launching}, {Online, Errored}, {Errored, Launching},
		{Launching, Unknown}, {Unknown, Stopped}, {Stopped, Launching},
	}
	illegal := []struct{ from, to State }{
		{None, Online}, {Stopped, Online}, {Errored, Online}, {Stopping, Online},
		{WaitingRestart, Online}, {Online, Launching}, {Stopping, WaitingRestart}, {Unknown, Launching},
	}
	for _, c := range legal {
		if !CanMove(c.from, c.to) {
			t.Errorf("%s → %s: want legal", c.from, c.to)
		}
	}
	for _, c := range illegal {
		if CanMove(c.from, c.to) {
			t.Errorf("%s → %s: want illegal", c.from, c.to)
		}
	}
	var got []Transition
	m := Machine{Name: "web.0", OnChange: func(tr Transition) { got = append(got, tr) }}
	if err := m.Set(Online, "x"); err == nil {
		t.Error("None → Online: Set accepted an illegal move")
	}
	for _, s := range []State{Launching, Online, Stopping, Stopped} {
		if err := m.Set(s, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 4 || got[3].String() != "web.0: stopping → stopped (test)" {
		t.Errorf("transitions = %v", got)
	}
	if st, _ := m.State(); st != Stopped || m.Count(Launching) != 1 {
		t.Errorf("state %s, launching count %d", st, m.Count(Launching))
	}
}

func tcpListener(t *testing.T) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Cleanup(func() { f.Close() })
	return f, addr
}

func waitDone(t *testing.T, p *Process, d time.Duration) ExitStatus {
	t.Helper()
	select {
	case <-p.Done():
		return p.Status()
	case <-time.After(d):
		p.Signal(syscall.SIGKILL)
		t.Fatalf("pid %d did not exit within %s", p.PID, d)
	}
	return ExitStatus{}
}

func alive(pid int) bool { return unix.Kill(pid, 0) == nil }

func TestListenPIDAndNotify(t *testing.T) {
	s := spawner(t)
	f, addr := tcpListener(t)
	var buf syncBuffer
	log := NewLog(&buf, false)
	spec := helperSpec("web.0", "serve-fd3", "LAUNCH_INSTANCE=0", "LISTEN_PID=1", "NOTIFY_SOCKET=/nonexistent")
	spec.Files, spec.FileNames, spec.Notify, spec.Output = []*os.File{f}, []string{"web"}, true, log
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Ready():
	case <-p.Done():
		t.Fatalf("worker exited before READY=1: %s", p.Status())
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1 within 10s")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	want := "pid=" + strconv.Itoa(p.PID) + " fds=1 names=web instance=0\n"
	if line != want {
		t.Errorf("worker answered %q, want %q (LISTEN_PID must be the worker's own pid)", line, want)
	}
	if notes := p.Notes(); len(notes) != 1 || notes[0] != "serving" {
		t.Errorf("STATUS notes = %q", notes)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := waitDone(t, p, 5*time.Second)
	if !st.Success() {
		t.Errorf("status %s, want exit code 0 (the helper exits cleanly on SIGTERM)", st)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after reap = %v, want os.ErrProcessDone", err)
	}
	log.Close()
	if !strings.Contains(buf.String(), "web.0 | listening on fd 3\n") {
		t.Errorf("output not prefixed: %q", buf.String())
	}
}

func TestExitCodeAndExecFailure(t *testing.T) {
	s := spawner(t)
	p, err := s.Start(helperSpec("x.0", "exit", "EXIT_CODE=7"))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, p, 5*time.Second); st.Code != 7 || st.Success() {
		t.Errorf("status %s, want exit code 7", st)
	}
	spec := helperSpec("x.1", "exit")
	spec.Path = "/nonexistent/program"
	p, err = s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, p, 5*time.Second); st.Code != 127 {
		t.Errorf("exec of a missing program: %s, want exit code 127", st)
	}
	// The exit status can come before the stderr reader has the line.
	select {
	case <-p.OutputDone():
	case <-time.After(5 * time.Second):
		t.Fatal("stderr never reached EOF")
	}
	if tail := p.Tail(); len(tail) == 0 || !strings.Contains(tail[0], "cannot execute /nonexistent/program") {
		t.Errorf("stderr tail = %q", tail)
	}
}

// TestGroupDiesWithLeader: what a worker started (a shell's child, say)
// is killed when the worker's main process exits, and with the group
// when it is stopped.
func TestGroupDiesWithLeader(t *testing.T) {
	s := spawner(t)
	for _, thenExit := range []bool{true, false} {
		env := []string{}
		if thenExit {
			env = append(env, "THEN_EXIT=1")
		}
		pr, pw, _ := os.Pipe()
		log := NewLog(pw, false)
		spec := helperSpec("g.0", "with-child", env...)
		spec.Output = log
		p, err := s.Start(spec)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(pr)
		sc.Scan()
		var child int
		if _, err := fmtSscanf(sc.Text(), "g.0 | child %d", &child); err != nil {
			t.Fatalf("thenExit=%v: bad line %q: %v", thenExit, sc.Text(), err)
		}
		if !thenExit {
			p.Signal(syscall.SIGTERM)
		}
		waitDone(t, p, 5*time.Second)
		deadline := time.Now().Add(3 * time.Second)
		for alive(child) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(child) {
			unix.Kill(child, unix.SIGKILL)
			t.Errorf("thenExit=%v: child %d outlived its worker", thenExit, child)
		}
		go func() {
			for sc.Scan() {
			}
		}()
		log.Close()
		pw.Close()
		pr.Close()
	}
}

func TestOutputFloodNeverBlocksWorker(t *testing.T) {
	s := spawner(t)
	slow := &slowWriter{delay: 2 * time.Millisecond}
	log := NewLog(slow, false)
	spec := helperSpec("f.0", "flood")
	spec.Output = log
	start := time.Now()
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	st := waitDone(t, p, 30*time.Second)
	if !st.Success() {
		t.Fatalf("flood helper: %s", st)
	}
	elapsed := time.Since(start)
	log.Close()
	out := slow.String()
	if !strings.Contains(out, "dropped]") {
		t.Errorf("no drop marker in output (%d bytes, flood took %s)", len(out), elapsed)
	}
	if strings.Contains(out, strings.Repeat("y", maxLine+1)) {
		t.Error("a line longer than the limit was not split")
	}
}

func TestNodeIPCReady(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	s := spawner(t)
	spec := Spec{Name: "n.0", Path: node, Args: []string{"-e", "process.send('ready'); setTimeout(() => {}, 20000)"}, Env: os.Environ(), IPC: true}
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Ready():
	case <-p.Done():
		t.Fatalf("node exited: %s", p.Status())
	case <-time.After(10 * time.Second):
		t.Fatal("process.send('ready') not heard within 10s")
	}
	p.Signal(syscall.SIGKILL)
	waitDone(t, p, 5*time.Second)
}

func TestIsReadyMessage(t *testing.T) {
	for _, c := range []struct {
		line string
		want bool
	}{{`"ready"`, true}, {`{"type":"ready"}`, true}, {`{"data":"ready"}`, true}, {`"online"`, false}, {`42`, false}} {
		var v any
		if err := jsonUnmarshal(c.line, &v); err != nil {
			t.Fatal(err)
		}
		if got := isReadyMessage(v); got != c.want {
			t.Errorf("%s: got %v, want %v", c.line, got, c.want)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type slowWriter struct {
	syncBuffer
	delay time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.syncBuffer.Write(p)
}

// TestLostStatusIsReported: a registered process whose status someone
// else took (here: a pid that is not our child at all) is reported as
// lost, which the supervisor turns into the unknown state.
func TestLostStatusIsReported(t *testing.T) {
	spawner(t)
	r := testReaper
	p := &Process{PID: 1 << 22, reaper: r, done: make(chan struct{}), ready: make(chan struct{})}
	r.mu.Lock()
	r.registerLocked(p)
	r.mu.Unlock()
	r.reapAll() // no children at all: waitid says ECHILD
	select {
	case <-p.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("lost process never reported")
	}
	if st := p.Status(); !st.Lost || st.String() != "exit status lost" {
		t.Errorf("status %+v, want lost", st)
	}
}
