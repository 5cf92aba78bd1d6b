package main

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/launch-go/launch/internal/helperproc"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real launch binary, as a user would, on the example
// apps: real processes, real sockets on 127.0.0.1, real signals.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "launch-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	os.Chmod(dir, 0o755) // workers run as nobody in one test
	// Every master of these tests keeps its control socket here.
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	os.Setenv("LAUNCH_HOME", home)
	for _, pkg := range []string{"./", "../../examples/hello", "../../examples/crashy"} {
		out, err := exec.Command("go", "build", "-o", dir+"/", pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	helperproc.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// master is a running `launch` process and its output.
type launchProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
	err  error
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startMaster(t *testing.T, args ...string) *launchProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "launch"), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	m := &launchProc{t: t, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			m.mu.Lock()
			m.out.WriteString(sc.Text() + "\n")
			m.mu.Unlock()
		}
	}()
	go func() {
		m.err = cmd.Wait()
		pw.Close()
		close(m.done)
	}()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-m.done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-m.done
			}
		}
		if t.Failed() {
			t.Logf("launch output:\n%s", m.output())
		}
	})
	return m
}

func (m *launchProc) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

func (m *launchProc) waitFor(substr string, d time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(m.output(), substr) {
		select {
		case <-m.done:
			if strings.Contains(m.output(), substr) {
				return
			}
			m.t.Fatalf("launch exited (%v) before printing %q", m.err, substr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("launch did not print %q within %s", substr, d)
		}
	}
}

func (m *launchProc) wait(d time.Duration) int {
	m.t.Helper()
	select {
	case <-m.done:
	case <-time.After(d):
		m.t.Fatalf("launch did not exit within %s", d)
	}
	var ee *exec.ExitError
	if errors.As(m.err, &ee) {
		return ee.ExitCode()
	}
	if m.err != nil {
		m.t.Fatal(m.err)
	}
	return 0
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get returns the X-Pid of the worker that answered.
func get(url string) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return strconv.Atoi(resp.Header.Get("X-Pid"))
}

// alive reports whether pid runs; a zombie (dead, not yet reaped by its
// new parent after the master died) counts as dead.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func helloApp(t *testing.T, port int, extra string) string {
	return writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: web
    script: %s/hello
    listen: ["127.0.0.1:%d"]
    ready: notify
    kill_timeout: 3s
%s`, binDir, port, extra))
}

func TestTwoWorkersCrashAndCleanStop(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	m := startMaster(t, helloApp(t, port, ""), "-i", "2") // flags after the file
	m.waitFor(fmt.Sprintf("launch: web: 2 workers on 127.0.0.1:%d (shared socket)", port), 10*time.Second)
	m.waitFor("web: ready", 15*time.Second)
	m.waitFor("web.0 | listening on fd 3", 5*time.Second)

	seen := map[int]bool{}
	for i := 0; i < 400 && len(seen) < 2; i++ {
		pid, err := get(url)
		if err != nil {
			t.Fatal(err)
		}
		seen[pid] = true
	}
	if len(seen) != 2 {
		t.Fatalf("requests reached %d workers, want 2", len(seen))
	}
	// Kill one worker while requests flow: the port keeps accepting.
	var victim int
	for pid := range seen {
		victim = pid
		break
	}
	syscall.Kill(victim, syscall.SIGKILL)
	for i := 0; i < 200; i++ {
		if _, err := get(url); err != nil {
			t.Fatalf("request %d after SIGKILL of a worker: %v", i, err)
		}
	}
	m.waitFor("killed by SIGKILL", 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(m.output(), "→ online") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Count(m.output(), "→ online") < 3 {
		t.Fatal("the killed worker was not replaced")
	}

	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(15 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for pid := range seen {
		if alive(pid) {
			t.Errorf("worker %d alive after the master exited", pid)
		}
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Errorf("port not released: %v", err)
	} else {
		l.Close()
	}
}

func TestCrashAtOneInstanceRefusesNothing(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	m := startMaster(t, "-i", "1", helloApp(t, port, ""))
	m.waitFor("web: ready", 15*time.Second)
	pid, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	// With the only worker dead, new connections wait in the master's
	// queue until the replacement accepts them.
	for i := 0; i < 20; i++ {
		got, err := get(url)
		if err != nil {
			t.Fatalf("request %d while the only worker restarts: %v", i, err)
		}
		if got == pid {
			t.Fatalf("answered by the killed worker %d", pid)
		}
	}
}

func TestMasterSIGKILLLeavesNoWorker(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	m := startMaster(t, "-i", "2", helloApp(t, port, ""))
	m.waitFor("web: ready", 15*time.Second)
	seen := map[int]bool{}
	for i := 0; i < 400 && len(seen) < 2; i++ {
		if pid, err := get(url); err == nil {
			seen[pid] = true
		}
	}
	m.cmd.Process.Kill()
	m.wait(5 * time.Second)
	deadline := time.Now().Add(time.Second)
	for {
		left := 0
		for pid := range seen {
			if alive(pid) {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers alive 1s after SIGKILL of the master", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The port is free for a new master.
	m2 := startMaster(t, "-i", "1", helloApp(t, port, ""))
	m2.waitFor("web: ready", 15*time.Second)
}

func TestSIGTERMKillsStubbornAndShellChildren(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pids")
	// A shell without exec: sh stays the worker, its children are a
	// sleep in the background and one that ignores SIGTERM.
	script := writeFile(t, "run.sh", fmt.Sprintf(`#!/bin/sh
sleep 300 &
echo $! >> %[1]s
sh -c 'trap "" TERM; echo $$ >> %[1]s; while :; do sleep 1; done' &
wait
`, pidfile))
	os.Chmod(script, 0o755)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: sh
    script: %s
    interpreter: none
    instances: 1
    kill_timeout: 500ms
    ready: delay:100ms
`, script))
	m := startMaster(t, app)
	m.waitFor("sh: ready", 10*time.Second)
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) < 2 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(pidfile)
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) < 2 {
		t.Fatalf("children not started: %v", pids)
	}
	t0 := time.Now()
	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("stop took %s", el)
	}
	for _, pid := range pids {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("child %d of the shell worker survived the stop", pid)
		}
	}
}

func TestErroredAppIsRefusedAndMasterLives(t *testing.T) {
	port := freePort(t)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: crashy
    script: %s/crashy
    instances: 1
    listen: ["127.0.0.1:%d"]
    env: { CRASH_ON_START: "1" }
    max_restarts: 3
    restart_delay: 50
`, binDir, port))
	m := startMaster(t, app)
	m.waitFor("crashy: ERRORED", 15*time.Second)
	if n := strings.Count(m.output(), "→ launching"); n != 3 {
		t.Errorf("%d starts, want 3", n)
	}
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err == nil {
		c.Close()
		t.Fatal("connection to an errored app was accepted")
	}
	if !strings.Contains(err.Error(), "refused") || time.Since(t0) > time.Second {
		t.Errorf("dial: %v after %s, want refused at once", err, time.Since(t0))
	}
	select {
	case <-m.done:
		t.Fatal("the master exited because its only app errored")
	case <-time.After(200 * time.Millisecond):
	}
	m.cmd.Process.Signal(syscall.SIGINT)
	if code := m.wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", code)
	}
}

func TestPortInUseExit2(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	m := startMaster(t, helloApp(t, port, ""))
	if code := m.wait(10 * time.Second); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	want := fmt.Sprintf("bind 127.0.0.1:%d: address already in use", port)
	if !strings.Contains(m.output(), want) || !strings.Contains(m.output(), "app.yaml:4") {
		t.Errorf("output %q lacks %q with file:line", m.output(), want)
	}
}

func TestNodeIPCReady(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	port := freePort(t)
	appjs, _ := filepath.Abs("../../examples/hello-node/app.js")
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: node
    script: %s
    instances: 2
    listen: ["127.0.0.1:%d"]
    wait_ready: true
`, appjs, port))
	m := startMaster(t, app)
	m.waitFor("node: ready", 15*time.Second)
	if !strings.Contains(m.output(), "→ online (READY)") {
		t.Error("node workers became online without process.send('ready')")
	}
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
		t.Fatal(err)
	}
}

// TestLibsystemdClient: an app that uses libsystemd's own sd_listen_fds
// and sd_notify (Python's systemd.daemon from Debian's python3-systemd)
// gets the socket and its readiness is heard.
func TestLibsystemdClient(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import systemd.daemon").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-systemd missing: .ci/run should have installed it")
		}
		t.Skip("python3-systemd not installed (apt-get install python3-systemd)")
	}
	port := freePort(t)
	py := writeFile(t, "app.py", `import os, socket, systemd.daemon
fds = systemd.daemon.listen_fds()   # checks LISTEN_PID == getpid()
assert fds == [3], fds
s = socket.socket(fileno=fds[0])
print("listening on fd", fds[0], flush=True)
systemd.daemon.notify("READY=1")
while True:
    c, _ = s.accept()
    c.recv(1024)
    body = str(os.getpid()).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nX-Pid: " + body + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    c.close()
`)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: py
    script: %s
    interpreter: /usr/bin/python3
    instances: 2
    listen: ["127.0.0.1:%d"]
    ready: notify
    listen_timeout: 5s
`, py, port))
	m := startMaster(t, app)
	m.waitFor("py: ready", 15*time.Second)
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdNotifyForMaster: under systemd (Type=notify) the master
// sends READY=1 once every app is ready and STOPPING=1 on stop, and its
// workers do not inherit its NOTIFY_SOCKET.
func TestSystemdNotifyForMaster(t *testing.T) {
	sockPath := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 8)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	port := freePort(t)
	t.Setenv("NOTIFY_SOCKET", sockPath)
	m := startMaster(t, "-i", "2", helloApp(t, port, ""))
	select {
	case msg := <-got:
		if msg != "READY=1" {
			t.Fatalf("first message %q, want READY=1", msg)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no READY=1 from the master")
	}
	// The master logs "ready" before it notifies; the log line may take
	// a moment longer through the pipe.
	m.waitFor("web: ready (2 of 2 workers online)", 2*time.Second)
	// The workers have their own NOTIFY_SOCKET, not the master's.
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/env?k=NOTIFY_SOCKET", port))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), sockPath) {
		t.Errorf("worker inherited the master's NOTIFY_SOCKET: %q", b)
	}
	// A reload (SIGHUP, as Type=notify-reload sends it): RELOADING=1 with
	// MONOTONIC_USEC, then READY=1 once it is done.
	m.cmd.Process.Signal(syscall.SIGHUP)
	for _, want := range []string{"RELOADING=1\nMONOTONIC_USEC=", "READY=1"} {
		select {
		case msg := <-got:
			if !strings.HasPrefix(msg, want) {
				t.Errorf("message on reload %q, want %q", msg, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no %q on reload", want)
		}
	}
	// A SIGHUP while a reload runs is queued, not refused: acknowledged at
	// once (RELOADING=1), and the file is read again after the running
	// reload. (The second is sent once the first is taken: the kernel
	// merges a pending SIGHUP. If the first one lands while the previous
	// reload is still winding down, it is queued too, and the two may make
	// one reload between them.)
	m.cmd.Process.Signal(syscall.SIGHUP)
	var msgs []string
	select {
	case msg := <-got:
		msgs = append(msgs, msg)
	case <-time.After(15 * time.Second):
		t.Fatal("no RELOADING=1 on the third SIGHUP")
	}
	m.cmd.Process.Signal(syscall.SIGHUP)
	ready := 0
collect:
	for ready < 2 {
		wait := 20 * time.Second
		if ready == 1 {
			wait = 3 * time.Second // a coalesced pair ends here
		}
		select {
		case msg := <-got:
			msgs = append(msgs, msg)
			if msg == "READY=1" {
				ready++
			}
		case <-time.After(wait):
			if ready == 0 {
				t.Fatalf("two SIGHUPs: got %q, want READY=1", msgs)
			}
			break collect
		}
	}
	reloading := 0
	for _, msg := range msgs {
		if strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
			reloading++
		}
	}
	m.waitFor("queued: the file is read again", 5*time.Second)
	// Each reload sends RELOADING=1 and READY=1; each queued SIGHUP its
	// own RELOADING=1 at once.
	queued := strings.Count(m.output(), "queued: the file is read again")
	if reloading+ready != len(msgs) || reloading != ready+queued || msgs[len(msgs)-1] != "READY=1" {
		t.Errorf("two SIGHUPs (%d queued): messages %q, want RELOADING=1 per reload and per queued SIGHUP, READY=1 per reload, READY=1 last", queued, msgs)
	}
	want := 1 + ready // the first SIGHUP's reload, then one per READY=1 here
	for deadline := time.Now().Add(5 * time.Second); strings.Count(m.output(), "reload web: done") < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // the log line may trail READY=1
	}
	if n := strings.Count(m.output(), "reload web: done"); n != want {
		t.Errorf("%d reloads done, want %d", n, want)
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case msg := <-got:
		if msg != "STOPPING=1" {
			t.Errorf("message on stop %q, want STOPPING=1", msg)
		}
	case <-time.After(10 * time.Second):
		t.Error("no STOPPING=1")
	}
	m.wait(10 * time.Second)
}

// TestUIDDropKeepsDeathSignal: workers run as the configured user, and
// still die with a SIGKILLed master (the trampoline re-arms Pdeathsig,
// which the kernel clears when credentials change).
func TestUIDDropKeepsDeathSignal(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	port := freePort(t)
	m := startMaster(t, "-i", "1", helloApp(t, port, "    uid: nobody\n"))
	m.waitFor("web: ready", 15*time.Second)
	pid, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Errorf("worker not running as nobody:\n%s", status)
	}
	m.cmd.Process.Kill()
	m.wait(5 * time.Second)
	deadline := time.Now().Add(time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("a worker running as another user outlived the SIGKILLed master")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAddrInUseHint: an app that ignores the inherited socket and binds
// PORT itself gets told to use it or balance: proxy.
func TestAddrInUseHint(t *testing.T) {
	port := freePort(t)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: binder
    script: /usr/bin/python3
    args: ["-c", "import os, socket; socket.socket().bind(('127.0.0.1', int(os.environ['PORT'])))"]
    instances: 1
    listen: ["127.0.0.1:%d"]
    max_restarts: 2
    restart_delay: 10
`, port))
	m := startMaster(t, app)
	m.waitFor("balance: proxy", 10*time.Second)
	m.waitFor("binder: ERRORED", 10*time.Second)
}

// TestBadAppFiles: every bad file gives one clear message with file:line
// and exit 2, and starts nothing.
func TestBadAppFiles(t *testing.T) {
	cases := []struct {
		name, file, text, want string
	}{
		{"syntax", "app.yaml", "apps:\n  - name: web\n    script: [x\n", "app.yaml:3"},
		{"unknown key", "app.yaml", "apps:\n  - name: web\n    script: /bin/true\n    instanses: 2\n", `app.yaml:4:5: app "web": instanses: unknown app key; did you mean "instances"?`},
		{"wrong type", "app.yaml", "apps:\n  - name: web\n    script: /bin/true\n    instances: lots\n", "app.yaml:4:5"},
		{"negative duration", "app.yaml", "apps:\n  - name: web\n    script: /bin/true\n    kill_timeout: -5\n", "kill_timeout: must not be negative"},
		{"missing script", "app.yaml", "apps:\n  - name: web\n    args: x\n", "app.yaml:2:5: app \"web\": missing script"},
		{"duplicate names", "app.yaml", "apps:\n  - name: web\n    script: /bin/true\n  - name: web\n    script: /bin/true\n", "lines 2 and 4"},
		{"script not found", "app.yaml", "apps:\n  - name: web\n    script: ./nope\n", `app.yaml:2: app "web": cannot run`},
		{"bad listen", "app.yaml", "apps:\n  - name: web\n    script: /bin/true\n    listen: [\"127.0.0.1:99999\"]\n", "app.yaml:4"},
		{"json", "app.json", "{\"apps\": [{\"name\": \"web\", \"script\": \"/bin/true\",\n \"instances\": \"lots\"}]}", "app.json:2"},
		{"empty", "app.yaml", "", "app.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, c.file, c.text)
			m := startMaster(t, path)
			if code := m.wait(10 * time.Second); code != 2 {
				t.Errorf("%s: exit %d, want 2", c.name, code)
			}
			out := m.output()
			if !strings.Contains(out, c.want) || strings.Contains(out, "panic") || strings.Contains(out, "launching") {
				t.Errorf("%s: output %q, want it to contain %q and start nothing", c.name, out, c.want)
			}
		})
	}
	m := startMaster(t, "/nonexistent/app.yaml")
	if code := m.wait(10 * time.Second); code != 2 || !strings.Contains(m.output(), "/nonexistent/app.yaml") {
		t.Errorf("unreadable file: exit %d, output %q", code, m.output())
	}
	m = startMaster(t, "--bogus", "x.yaml")
	if code := m.wait(10 * time.Second); code != 2 || !strings.Contains(m.output(), "unknown flag: --bogus") {
		t.Errorf("bad flag: exit %d, output %q", code, m.output())
	}
}

// TestStalledStdoutDoesNotFreezeMaster: with its stdout a pipe nobody
// reads and a chatty worker, the master still stops on SIGTERM.
func TestStalledStdoutDoesNotFreezeMaster(t *testing.T) {
	app := writeFile(t, "app.yaml", `apps:
  - name: chatty
    script: /usr/bin/yes
    args: ["a line of output that fills the pipe"]
    instances: 1
    kill_timeout: 500ms
`)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close() // never read
	cmd := exec.Command(filepath.Join(binDir, "launch"), app)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(1500 * time.Millisecond) // the pipe and the queue fill up
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the master did not stop on SIGTERM while its stdout was stalled")
	}
}

func TestReusePortMode(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	m := startMaster(t, "-i", "2", helloApp(t, port, "    balance: reuseport\n"))
	m.waitFor(fmt.Sprintf("web: 2 workers on 127.0.0.1:%d (a SO_REUSEPORT socket per worker)", port), 10*time.Second)
	m.waitFor("web: ready", 15*time.Second)
	out, err := exec.Command("ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).Output()
	if err == nil && strings.Count(string(out), "LISTEN") != 2 {
		t.Errorf("ss -ltn shows %d listening sockets, want 2:\n%s", strings.Count(string(out), "LISTEN"), out)
	}
	seen := map[int]int{}
	for i := 0; i < 200; i++ {
		pid, err := get(url)
		if err != nil {
			t.Fatal(err)
		}
		seen[pid]++
	}
	if len(seen) != 2 {
		t.Errorf("200 new connections reached %v, want both workers", seen)
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
