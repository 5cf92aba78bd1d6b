package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ctl runs `launch ARGS` as a client and returns stdout, stderr and the
// exit code.
func ctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "launch"), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// ctlOK runs a client command that must succeed.
func ctlOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := ctl(t, args...)
	if code != 0 {
		t.Fatalf("launch %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// lsJSON is `launch ls -o json --name NAME`.
func lsJSON(t *testing.T, name string) []workerJSON {
	t.Helper()
	var rows []workerJSON
	out := ctlOK(t, "ls", "-o", "json", "--name", name)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	return rows
}

// waitWorkers polls ls until ok accepts the rows.
func waitWorkers(t *testing.T, name string, d time.Duration, what string, ok func([]workerJSON) bool) []workerJSON {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		rows := lsJSON(t, name)
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s: %s; ls: %+v", d, what, rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func online(rows []workerJSON) (n int) {
	for _, r := range rows {
		if r.State == "online" && !r.Incoming {
			n++
		}
	}
	return n
}

func TestControlCommands(t *testing.T) {
	port := freePort(t)
	m := startMaster(t, "-i", "2", "--name", "ctl1", helloApp(t, port, ""))
	m.waitFor("web: ready", 10*time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	rows := lsJSON(t, "ctl1")
	if len(rows) != 2 || online(rows) != 2 {
		t.Fatalf("ls: want 2 online workers, got %+v", rows)
	}
	// The raw JSON has the names scripts rely on.
	raw := ctlOK(t, "ls", "--name", "ctl1", "-o", "json")
	for _, k := range []string{`"app"`, `"instance"`, `"pid"`, `"state"`, `"restarts"`, `"uptime_ms"`, `"cpu_percent"`, `"memory_bytes"`} {
		if !strings.Contains(raw, k) {
			t.Errorf("ls -o json lacks %s: %s", k, raw)
		}
	}
	table := ctlOK(t, "ls") // the only master: found without --name
	if !strings.Contains(table, "APP") || !strings.Contains(table, "online") {
		t.Errorf("ls table:\n%s", table)
	}

	// kill -9 one worker: ls shows it restarted within 2 s.
	victim := rows[0]
	syscall.Kill(victim.PID, syscall.SIGKILL)
	waitWorkers(t, "ctl1", 2*time.Second, "the killed worker restarted", func(rs []workerJSON) bool {
		for _, r := range rs {
			if r.Instance == victim.Instance && r.Restarts == victim.Restarts+1 && r.PID != victim.PID && r.PID != 0 {
				return true
			}
		}
		return false
	})

	var d describeJSON
	if err := json.Unmarshal([]byte(ctlOK(t, "describe", "web", "--name", "ctl1", "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Restarts["crash"] != 1 {
		t.Errorf("describe: restarts by reason = %v, want crash 1", d.Restarts)
	}
	var found bool
	for _, s := range d.Slots {
		if s.Instance == victim.Instance && s.LastExit != nil && s.LastExit.Signal == "SIGKILL" && len(s.Log) == 1 && s.Log[0].Reason == "crash" {
			found = true
		}
	}
	if !found {
		t.Errorf("describe: slot %d lacks last exit SIGKILL and its restart record: %+v", victim.Instance, d.Slots)
	}
	if out := ctlOK(t, "describe", "web"); !strings.Contains(out, "killed by SIGKILL") {
		t.Errorf("describe text lacks the last exit:\n%s", out)
	}

	// stop: workers stopped, the port refuses; start brings them back.
	ctlOK(t, "stop", "web")
	rows = lsJSON(t, "ctl1")
	for _, r := range rows {
		if r.State != "stopped" || r.PID != 0 {
			t.Fatalf("after stop: %+v", rows)
		}
	}
	if _, err := get(url); err == nil {
		t.Error("after stop: the port still answers")
	}
	ctlOK(t, "start", "web")
	waitWorkers(t, "ctl1", 5*time.Second, "2 online after start", func(rs []workerJSON) bool { return online(rs) == 2 })
	if _, err := get(url); err != nil {
		t.Errorf("after start: %v", err)
	}

	// restart: new pids, reason restart.
	before := lsJSON(t, "ctl1")
	ctlOK(t, "restart", "all")
	waitWorkers(t, "ctl1", 5*time.Second, "2 new workers online after restart", func(rs []workerJSON) bool {
		if online(rs) != 2 {
			return false
		}
		for _, r := range rs {
			for _, b := range before {
				if r.PID == b.PID {
					return false
				}
			}
		}
		return true
	})

	// scale: 4, then -1 (a number, not a flag), then +1.
	ctlOK(t, "scale", "web", "4")
	waitWorkers(t, "ctl1", 5*time.Second, "4 online", func(rs []workerJSON) bool { return online(rs) == 4 })
	ctlOK(t, "scale", "web", "-1", "--name", "ctl1")
	waitWorkers(t, "ctl1", 5*time.Second, "3 workers", func(rs []workerJSON) bool { return len(rs) == 3 && online(rs) == 3 })
	ctlOK(t, "scale", "--name", "ctl1", "web", "+1")
	waitWorkers(t, "ctl1", 5*time.Second, "4 online", func(rs []workerJSON) bool { return online(rs) == 4 })
	if _, errs, code := ctl(t, "scale", "web", "-9"); code != 2 || !strings.Contains(errs, "at least 1") {
		t.Errorf("scale web -9: exit %d, %q", code, errs)
	}

	// logs: recent lines, and -f streams new ones.
	if out := ctlOK(t, "logs", "web", "--lines", "50"); !strings.Contains(out, "listening on fd 3") {
		t.Errorf("logs: %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, filepath.Join(binDir, "launch"), "logs", "-f", "web", "-n", "0")
	var fout syncBuffer
	follow.Stdout = &fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	ctlOK(t, "signal", "web", "TERM") // every worker drains, logs it, and is restarted
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(fout.String(), "draining") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	follow.Process.Kill()
	follow.Wait()
	if !strings.Contains(fout.String(), "web.") || !strings.Contains(fout.String(), "draining") {
		t.Errorf("logs -f did not stream the workers' new lines: %q", fout.String())
	}

	// Errors: unknown app or worker, bad flag, bad signal, bad count.
	if _, errs, code := ctl(t, "ls", "nope"); code != 1 || !strings.Contains(errs, `no app named "nope"`) {
		t.Errorf("ls nope: exit %d, %q", code, errs)
	}
	if _, errs, code := ctl(t, "logs", "web.9"); code != 1 || !strings.Contains(errs, "no worker web.9") {
		t.Errorf("logs web.9: exit %d, %q", code, errs)
	}
	if _, _, code := ctl(t, "scale", "web", "0"); code != 2 {
		t.Errorf("scale web 0: exit %d, want 2", code)
	}
	if _, _, code := ctl(t, "ls", "--name", "../x"); code != 2 {
		t.Errorf("ls --name ../x: exit %d, want 2", code)
	}
	if _, errs, code := ctl(t, "describe", "nope"); code != 1 || !strings.Contains(errs, `no app named "nope"`) {
		t.Errorf("describe nope: exit %d, %q", code, errs)
	}
	if _, _, code := ctl(t, "ls", "--bogus"); code != 2 {
		t.Errorf("ls --bogus: exit %d, want 2", code)
	}
	if _, errs, code := ctl(t, "signal", "web", "SIGNOPE"); code != 2 || !strings.Contains(errs, "unknown signal") {
		t.Errorf("signal web SIGNOPE: exit %d, %q", code, errs)
	}

	// A second master with the same name is refused.
	m2 := startMaster(t, "--name", "ctl1", helloApp(t, freePort(t), ""))
	if code := m2.wait(10 * time.Second); code != 2 || !strings.Contains(m2.output(), `another master named "ctl1" is running`) {
		t.Errorf("second master: exit %d\n%s", code, m2.output())
	}

	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Gone: one clear line, exit 1.
	if out, errs, code := ctl(t, "ls"); code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "no launch master is running") {
		t.Errorf("ls with no master: exit %d, stdout %q, stderr %q", code, out, errs)
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

// socketClient talks to a master's control socket directly.
func socketClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxConnsPerHost: 0,
	}}
}

func TestControlSocketAbuse(t *testing.T) {
	port := freePort(t)
	m := startMaster(t, "-i", "1", "--name", "ctl2", helloApp(t, port, ""))
	m.waitFor("web: ready", 10*time.Second)
	sock := filepath.Join(os.Getenv("LAUNCH_HOME"), "ctl2.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %o, want 0600", fi.Mode().Perm())
	}

	// Garbage, nothing at all, and a request cut short.
	for _, payload := range []string{"\x00\x01garbage\r\n\r\n", "", "POST /v1/stop?app=web HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", "GET /v1/ls HTT"} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(payload))
		c.Close()
	}
	// 200 concurrent ls requests, all answered.
	hc := socketClient(sock)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get("http://launch/v1/ls")
			if err != nil {
				failed.Add(1)
				return
			}
			var rows []workerJSON
			if json.NewDecoder(resp.Body).Decode(&rows) != nil || len(rows) != 1 {
				failed.Add(1)
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	hc.CloseIdleConnections()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 200 concurrent ls failed", n)
	}
	if rows := lsJSON(t, "ctl2"); online(rows) != 1 {
		t.Errorf("after the abuse: %+v", rows)
	}
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
		t.Errorf("app after the abuse: %v", err)
	}
	if strings.Contains(m.output(), "stop web") {
		t.Error("a request cut short ran its action")
	}
}

func TestControlRefusesOtherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the client as nobody")
	}
	home := t.TempDir()
	port := freePort(t)
	m := startMasterEnv(t, []string{"LAUNCH_HOME=" + home}, "-i", "1", "--name", "ctl3", helloApp(t, port, ""))
	m.waitFor("web: ready", 10*time.Second)
	// Open the file permissions, so that connect() succeeds and the
	// credential check itself is what refuses.
	os.Chmod(filepath.Dir(home), 0o755)
	os.Chmod(home, 0o755)
	os.Chmod(filepath.Join(home, "ctl3.sock"), 0o777)
	cmd := exec.Command(filepath.Join(binDir, "launch"), "stop", "web", "--name", "ctl3")
	cmd.Env = append(os.Environ(), "LAUNCH_HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("stop as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "permission denied: uid 65534") {
		t.Errorf("stop as nobody: %s", out)
	}
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
		t.Errorf("the app stopped anyway: %v", err)
	}
}

// startMasterEnv is startMaster with extra environment.
func startMasterEnv(t *testing.T, env []string, args ...string) *launchProc {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return startMaster(t, args...)
}

// loadLoop sends GETs on new connections until stop; it counts failures.
func loadLoop(url string, stop <-chan struct{}, max int) (ok, failed *atomic.Int64, done <-chan struct{}) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	ch := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second}
			defer cl.CloseIdleConnections()
			for i := 0; i < max; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	return ok, failed, ch
}

func TestScaleUnderLoad(t *testing.T) {
	for _, mode := range []string{"shared", "reuseport"} {
		t.Run(mode, func(t *testing.T) {
			port := freePort(t)
			name := "scale-" + mode
			m := startMaster(t, "-i", "2", "--name", name, helloApp(t, port, "    balance: "+mode+"\n"))
			m.waitFor("web: ready", 10*time.Second)
			stop := make(chan struct{})
			ok, failed, done := loadLoop(fmt.Sprintf("http://127.0.0.1:%d/", port), stop, 20000)
			time.Sleep(300 * time.Millisecond)
			ctlOK(t, "scale", "web", "4", "--name", name)
			waitWorkers(t, name, 10*time.Second, "4 online", func(rs []workerJSON) bool { return online(rs) == 4 })
			time.Sleep(300 * time.Millisecond)
			ctlOK(t, "scale", "web", "1", "--name", name)
			waitWorkers(t, name, 10*time.Second, "1 worker", func(rs []workerJSON) bool { return len(rs) == 1 && online(rs) == 1 })
			time.Sleep(300 * time.Millisecond)
			close(stop)
			<-done
			t.Logf("%s: %d requests, %d failed", mode, ok.Load(), failed.Load())
			if ok.Load() == 0 {
				t.Fatal("no request succeeded")
			}
			// shared: one queue, nothing is lost. reuseport: a removed
			// slot's queued connections are reset unless
			// net.ipv4.tcp_migrate_req is on (README); report it.
			if failed.Load() != 0 && (mode == "shared" || migrateReqOn()) {
				t.Errorf("%s: %d failed requests", mode, failed.Load())
			}
		})
	}
}

func migrateReqOn() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func TestMaxMemoryRestart(t *testing.T) {
	port := freePort(t)
	app := helloApp(t, port, "    max_memory_restart: 80M\n")
	b, _ := os.ReadFile(app)
	os.WriteFile(app, append([]byte("sample_interval: 200ms\n"), b...), 0o644)
	m := startMaster(t, "-i", "1", "--name", "mem", app)
	m.waitFor("web: ready", 10*time.Second)
	rows := lsJSON(t, "mem")
	old := rows[0].PID
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/alloc?mb=150", port)); err != nil {
		t.Fatal(err)
	}
	rows = waitWorkers(t, "mem", 10*time.Second, "the worker replaced for memory", func(rs []workerJSON) bool {
		return len(rs) == 1 && rs[0].PID != old && rs[0].State == "online"
	})
	if rows[0].MemoryKind == "" {
		t.Logf("memory kind not reported yet: %+v", rows[0])
	}
	out := m.output()
	// The new worker was ready before the old one was told to stop.
	iReady := strings.Index(out, "launching → online")
	iNew := strings.LastIndex(out, "launching → online")
	iStop := strings.Index(out, "online → stopping")
	if iStop < 0 || iNew == iReady || iNew > iStop {
		t.Errorf("want the replacement online before the old worker stops:\n%s", out)
	}
	var d describeJSON
	json.Unmarshal([]byte(ctlOK(t, "describe", "web", "-o", "json", "--name", "mem")), &d)
	if d.Restarts["memory"] != 1 {
		t.Errorf("restarts by reason: %v, want memory 1", d.Restarts)
	}
}

// TestMetricsHealthAndLogFiles: /metrics, /healthz and /readyz on the
// address the app file names; shutdown_delay fails /readyz first while
// the workers keep serving; out_file gets the workers' output.
func TestMetricsHealthAndLogFiles(t *testing.T) {
	port, mport := freePort(t), freePort(t)
	dir := t.TempDir()
	app := writeFile(t, "app.yaml", fmt.Sprintf(`metrics: 127.0.0.1:%d
shutdown_delay: 1500ms
apps:
  - name: web
    script: %s/hello
    listen: ["127.0.0.1:%d"]
    ready: notify
    out_file: %s/out.log
    error_file: %s/err.log
    log_date_format: "YYYY-MM-DD HH:mm:ss"
`, mport, binDir, port, dir, dir))
	m := startMaster(t, "-i", "2", "--name", "met", app)
	m.waitFor("web: ready", 10*time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d", mport)
	status := func(path string) (int, string) {
		resp, err := httpClient.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if c, _ := status("/healthz"); c != 200 {
		t.Errorf("/healthz: %d", c)
	}
	if c, b := status("/readyz"); c != 200 {
		t.Errorf("/readyz: %d %s", c, b)
	}
	rows := lsJSON(t, "met")
	syscall.Kill(rows[0].PID, syscall.SIGKILL)
	waitWorkers(t, "met", 5*time.Second, "2 online again", func(rs []workerJSON) bool { return online(rs) == 2 })
	time.Sleep(1200 * time.Millisecond) // a sample after the restart
	_, body := status("/metrics")
	for _, want := range []string{
		`launch_worker_state{app="web",instance="0",state="online"} 1`,
		`launch_worker_restarts_total{app="web",instance="` + fmt.Sprint(rows[0].Instance) + `",reason="crash"} 1`,
		`launch_app_desired_instances{app="web"} 2`,
		`launch_app_ready_instances{app="web"} 2`,
		`launch_worker_memory_bytes{app="web",instance="0",kind=`,
		`launch_worker_cpu_seconds_total{app="web",instance="1"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	// SIGTERM with shutdown_delay: /readyz fails at once, the app serves on.
	m.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if c, _ := status("/readyz"); c != 503 {
		t.Errorf("/readyz during shutdown_delay: %d, want 503", c)
	}
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
		t.Errorf("the app during shutdown_delay: %v", err)
	}
	if code := m.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.log"))
	errb, _ := os.ReadFile(filepath.Join(dir, "err.log"))
	today := time.Now().Format("2006-01-02")
	if !strings.Contains(string(errb), "listening on fd 3") || !strings.HasPrefix(string(errb), today) {
		t.Errorf("err.log (hello logs to stderr) = %q", errb)
	}
	_ = out
}
