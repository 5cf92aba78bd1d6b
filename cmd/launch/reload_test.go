package main

import (
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

// traffic is a load generator for the whole length of a test: keep-alive
// clients and clients that open a new connection per request, each
// request checked (status 200, a version header), every failure kept.
type traffic struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string
	versions map[string]int
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startTraffic runs 2 keep-alive and 2 new-connection clients against url
// until stop, at most limit requests each.
func startTraffic(url string, limit int) *traffic {
	tr := &traffic{stop: make(chan struct{}), versions: map[string]int{}}
	for i := 0; i < 4; i++ {
		keepAlive := i%2 == 0
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			transport := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1}
			cl := &http.Client{Timeout: 10 * time.Second, Transport: transport}
			defer transport.CloseIdleConnections()
			for n := 0; n < limit; n++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				resp, err := cl.Get(url)
				if err != nil {
					tr.fail(fmt.Sprintf("keepalive=%v: %v", keepAlive, err))
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					tr.fail(fmt.Sprintf("keepalive=%v: body: %v", keepAlive, err))
				case resp.StatusCode != 200:
					tr.fail(fmt.Sprintf("keepalive=%v: status %d", keepAlive, resp.StatusCode))
				default:
					tr.ok.Add(1)
					tr.mu.Lock()
					tr.versions[resp.Header.Get("X-Version")]++
					tr.mu.Unlock()
				}
			}
		}()
	}
	return tr
}

func (tr *traffic) fail(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failures) < 20 {
		tr.failures = append(tr.failures, s)
	} else {
		tr.failures[19] = "… and more"
	}
}

func (tr *traffic) end() {
	close(tr.stop)
	tr.wg.Wait()
}

// reloadOK runs `launch reload` and returns its JSON result.
func reloadOK(t *testing.T, args ...string) reloadResult {
	t.Helper()
	out := ctlOK(t, append([]string{"reload", "-o", "json"}, args...)...)
	var res reloadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK {
		t.Fatalf("reload %v: %v\n%s", args, err, out)
	}
	return res
}

// buildHello builds examples/hello with its default version set to v.
func buildHello(t *testing.T, v string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hello-v"+v)
	b, err := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", out, "../../examples/hello").CombinedOutput()
	if err != nil {
		t.Fatalf("build hello v%s: %v\n%s", v, err, b)
	}
	return out
}

// replaceFile puts src at dst atomically (rename), as a deploy would.
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoadGo: 10 reloads of 2 Go workers under keep-alive and
// new-connection load, with a new binary on disk from the 5th on: no
// failed request, and only versions 1 and 2 answer, 2 at the end.
func TestReloadUnderLoadGo(t *testing.T) {
	v1, v2 := buildHello(t, "1"), buildHello(t, "2")
	for _, mode := range []string{"shared", "reuseport"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "server")
			replaceFile(t, v1, bin)
			port := freePort(t)
			app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: web
    script: %s
    listen: ["127.0.0.1:%d"]
    balance: %s
    ready: notify
    kill_timeout: 3s
`, bin, port, mode))
			name := "rl-" + mode
			m := startMaster(t, "-i", "2", "--name", name, app)
			m.waitFor("web: ready", 10*time.Second)
			tr := startTraffic(fmt.Sprintf("http://127.0.0.1:%d/", port), 100000)
			for i := 0; i < 10; i++ {
				if i == 5 {
					replaceFile(t, v2, bin)
				}
				res := reloadOK(t, "web", "--name", name)
				if len(res.Apps) != 1 || res.Apps[0].Replaced != 2 {
					t.Fatalf("reload %d: %+v", i, res)
				}
			}
			time.Sleep(200 * time.Millisecond)
			tr.end()
			t.Logf("%s: %d requests, versions %v", mode, tr.ok.Load(), tr.versions)
			if len(tr.failures) > 0 {
				t.Errorf("%d+ failed requests: %v", len(tr.failures), tr.failures)
			}
			for v := range tr.versions {
				if v != "1" && v != "2" {
					t.Errorf("version %q answered", v)
				}
			}
			if tr.versions["2"] == 0 {
				t.Error("the new binary never answered")
			}
			if pid, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil || pid == 0 {
				t.Fatal(err)
			}
			resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if v := resp.Header.Get("X-Version"); v != "2" {
				t.Errorf("after the reloads: version %q, want 2", v)
			}
		})
	}
}

// TestReloadUnderLoadNode: the same with the example Node app, its
// VERSION changed in the app file halfway.
func TestReloadUnderLoadNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (.ci/run installs it)")
	}
	_ = node
	script, _ := filepath.Abs("../../examples/hello-node/app.js")
	for _, mode := range []string{"shared", "reuseport"} {
		t.Run(mode, func(t *testing.T) {
			port := freePort(t)
			text := func(v string) string {
				return fmt.Sprintf(`apps:
  - name: web
    script: %s
    listen: ["127.0.0.1:%d"]
    balance: %s
    wait_ready: true
    env: { VERSION: "%s" }
`, script, port, mode, v)
			}
			app := writeFile(t, "app.yaml", text("1"))
			name := "rln-" + mode
			m := startMaster(t, "-i", "2", "--name", name, app)
			m.waitFor("web: ready", 15*time.Second)
			tr := startTraffic(fmt.Sprintf("http://127.0.0.1:%d/", port), 100000)
			for i := 0; i < 10; i++ {
				if i == 5 {
					os.WriteFile(app, []byte(text("2")), 0o644)
				}
				reloadOK(t, "web", "--name", name)
			}
			time.Sleep(200 * time.Millisecond)
			tr.end()
			t.Logf("node %s: %d requests, versions %v", mode, tr.ok.Load(), tr.versions)
			if len(tr.failures) > 0 {
				t.Errorf("%d+ failed requests: %v", len(tr.failures), tr.failures)
			}
			if tr.versions["2"] == 0 || len(tr.versions) != 2 {
				t.Errorf("versions %v, want 1 and 2", tr.versions)
			}
		})
	}
}

// TestReloadFailures: a build that crashes at start, a file that does not
// parse, and a reload asked while one runs; the old workers serve on.
func TestReloadFailures(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	replaceFile(t, filepath.Join(binDir, "hello"), bin)
	port := freePort(t)
	appText := fmt.Sprintf(`apps:
  - name: web
    script: %s
    listen: ["127.0.0.1:%d"]
    ready: notify
    kill_timeout: 3s
    listen_timeout: 2s
    env: { CRASH_ON_START: "1" }
`, bin, port)
	app := writeFile(t, "app.yaml", appText)
	m := startMaster(t, "-i", "2", "--name", "rlf", app)
	m.waitFor("web: ready", 10*time.Second)
	before := lsJSON(t, "rlf")
	tr := startTraffic(fmt.Sprintf("http://127.0.0.1:%d/", port), 100000)

	// A new build that crashes at start.
	replaceFile(t, filepath.Join(binDir, "crashy"), bin)
	out, errs, code := ctl(t, "reload", "web", "--name", "rlf")
	if code != 1 || !strings.Contains(errs, "reload failed") {
		t.Errorf("crashing build: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "FAILED") {
		t.Errorf("progress does not show the failed slot:\n%s", out)
	}
	after := lsJSON(t, "rlf")
	if online(after) != 2 || after[0].PID != before[0].PID || after[1].PID != before[1].PID {
		t.Errorf("after a failed reload: %+v, want the old workers %+v online", after, before)
	}

	// A file that does not parse: nothing changes, file:line in the error.
	replaceFile(t, filepath.Join(binDir, "hello"), bin)
	os.WriteFile(app, []byte(strings.Replace(appText, "ready: notify", "ready: notfy", 1)), 0o644)
	_, errs, code = ctl(t, "reload", "all", "--name", "rlf")
	if code != 1 || !strings.Contains(errs, "app.yaml:5") || !strings.Contains(errs, "nothing changed") {
		t.Errorf("bad file: exit %d, %s", code, errs)
	}
	// SIGHUP with the bad file: logged, nothing changes, master lives.
	m.cmd.Process.Signal(syscall.SIGHUP)
	m.waitFor("reload failed", 5*time.Second)
	if rows := lsJSON(t, "rlf"); rows[0].PID != before[0].PID {
		t.Errorf("SIGHUP with a bad file changed the workers: %+v", rows)
	}

	// A reload asked while one runs is refused. Make the roll slow: the
	// new workers wait 1.5 s before READY.
	os.WriteFile(app, []byte(strings.Replace(appText, `CRASH_ON_START: "1"`, `READY_DELAY_MS: "1500"`, 1)), 0o644)
	first := exec.Command(filepath.Join(binDir, "launch"), "reload", "web", "--name", "rlf")
	first.Env = append(os.Environ(), "NO_COLOR=1")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	_, errs, code = ctl(t, "reload", "web", "--name", "rlf")
	if code != 1 || !strings.Contains(errs, "already running") {
		t.Errorf("concurrent reload: exit %d, %s", code, errs)
	}
	if err := first.Wait(); err != nil {
		t.Errorf("the first reload: %v", err)
	}
	tr.end()
	if len(tr.failures) > 0 {
		t.Errorf("clients saw errors: %v", tr.failures)
	}
}

// TestReloadSlowRequestsAndStubbornWorker: a 2 s request in flight
// completes across a reload; a worker that ignores SIGTERM holds each
// slot at most kill_timeout.
func TestReloadSlowRequestsAndStubbornWorker(t *testing.T) {
	port := freePort(t)
	m := startMaster(t, "-i", "2", "--name", "rls", helloApp(t, port, "    env: { DRAIN_MAX_MS: \"5000\" }\n"))
	m.waitFor("web: ready", 10*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second}
			resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/slow?ms=2000", port))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "slept 2000") {
				errs <- fmt.Errorf("status %d: %q", resp.StatusCode, b)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	reloadOK(t, "web", "--name", "rls")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a long request across the reload: %v", err)
	}

	// A worker that ignores SIGTERM: kill_timeout 1s per slot.
	script := writeFile(t, "stubborn.sh", "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n")
	os.Chmod(script, 0o755)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: stubborn
    script: %s
    exec_mode: fork
    ready: delay:200ms
    kill_timeout: 1s
`, script))
	m2 := startMaster(t, "-i", "2", "--name", "rls2", app)
	m2.waitFor("stubborn: ready", 10*time.Second)
	t0 := time.Now()
	reloadOK(t, "stubborn", "--name", "rls2")
	// 2 slots × (0.2 s to ready + 1 s to SIGKILL) plus slack for 2 cores.
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("reload of 2 stubborn workers took %s, want about 2 × kill_timeout", d)
	}
	if !strings.Contains(m2.output(), "did not exit within kill_timeout") {
		t.Errorf("no SIGKILL after kill_timeout:\n%s", m2.output())
	}
}

// TestReloadAppFileChanges: reload all starts added apps, stops removed
// ones, applies a changed instances and env; SIGHUP does the same.
func TestReloadAppFileChanges(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	one := fmt.Sprintf(`apps:
  - name: a
    script: %[1]s/hello
    listen: ["127.0.0.1:%[2]d"]
    ready: notify
    env: { VERSION: "1" }
`, binDir, p1)
	two := fmt.Sprintf(`apps:
  - name: a
    script: %[1]s/hello
    instances: 3
    listen: ["127.0.0.1:%[2]d"]
    ready: notify
    env: { VERSION: "7" }
  - name: b
    script: %[1]s/hello
    listen: ["127.0.0.1:%[3]d"]
    ready: notify
`, binDir, p1, p2)
	app := writeFile(t, "app.yaml", one)
	m := startMaster(t, "--name", "rla", app)
	m.waitFor("a: ready", 10*time.Second)
	os.WriteFile(app, []byte(two), 0o644)
	m.cmd.Process.Signal(syscall.SIGHUP)
	waitWorkers(t, "rla", 15*time.Second, "a at 3 and b at 1", func(rs []workerJSON) bool {
		n := map[string]int{}
		for _, r := range rs {
			if r.State == "online" && !r.Incoming {
				n[r.App]++
			}
		}
		return n["a"] == 3 && n["b"] == 1 && len(rs) == 4
	})
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", p1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("X-Version"); v != "7" {
		t.Errorf("a's env after the reload: version %q, want 7", v)
	}
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", p2)); err != nil {
		t.Errorf("b: %v", err)
	}
	// Remove b: it stops and its port closes.
	os.WriteFile(app, []byte(one), 0o644)
	res := reloadOK(t, "all", "--name", "rla")
	var removed bool
	for _, a := range res.Apps {
		removed = removed || (a.App == "b" && a.Action == "removed")
	}
	if !removed {
		t.Errorf("reload result: %+v", res)
	}
	waitWorkers(t, "rla", 10*time.Second, "b gone, a back to 1", func(rs []workerJSON) bool {
		return len(rs) == 1 && rs[0].App == "a"
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p2), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("b's port still accepts after b was removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadEcosystemFile: a reload re-reads an ecosystem.config.js with
// node started through the master's own spawner (os/exec beside the
// reaper would lose node's exit status).
func TestReloadEcosystemFile(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed (.ci/run installs it)")
	}
	port := freePort(t)
	text := func(v string) string {
		return fmt.Sprintf(`module.exports = { apps: [{
  name: "web", script: %q, listen: ["127.0.0.1:%d"], ready: "notify",
  env: { VERSION: %q },
}] };
`, filepath.Join(binDir, "hello"), port, v)
	}
	app := writeFile(t, "ecosystem.config.js", text("1"))
	m := startMaster(t, "-i", "1", "--name", "rle", app)
	m.waitFor("web: ready", 10*time.Second)
	os.WriteFile(app, []byte(text("5")), 0o644)
	reloadOK(t, "all", "--name", "rle")
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("X-Version"); v != "5" {
		t.Errorf("version %q after the reload, want 5", v)
	}
	// A broken module: the reload fails with node's words, nothing changes.
	os.WriteFile(app, []byte("module.exports = { apps: [ oops ] };\n"), 0o644)
	_, errs, code := ctl(t, "reload", "all", "--name", "rle")
	if code != 1 || !strings.Contains(errs, "oops is not defined") {
		t.Errorf("broken module: exit %d, %s", code, errs)
	}
	if strings.Contains(m.output(), "unknown") {
		t.Errorf("a worker went unknown:\n%s", m.output())
	}
}

// TestReloadListenChange: a reload binds added addresses before the roll,
// keeps the socket of addresses that stay (their traffic never fails), and
// closes removed ones after the old workers are gone.
func TestReloadListenChange(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	text := func(ports ...int) string {
		var l []string
		for _, p := range ports {
			l = append(l, fmt.Sprintf(`"127.0.0.1:%d"`, p))
		}
		return fmt.Sprintf("apps:\n  - name: web\n    script: %s/hello\n    listen: [%s]\n    ready: notify\n", binDir, strings.Join(l, ", "))
	}
	app := writeFile(t, "app.yaml", text(p1))
	m := startMaster(t, "-i", "2", "--name", "rll", app)
	m.waitFor("web: ready", 10*time.Second)
	tr := startTraffic(fmt.Sprintf("http://127.0.0.1:%d/", p1), 100000)
	os.WriteFile(app, []byte(text(p1, p2)), 0o644)
	reloadOK(t, "web", "--name", "rll")
	tr.end()
	if len(tr.failures) > 0 {
		t.Errorf("traffic to the address that stayed failed: %v", tr.failures)
	}
	for _, p := range []int{p1, p2} {
		if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", p)); err != nil {
			t.Errorf("port %d after adding %d: %v", p, p2, err)
		}
	}
	os.WriteFile(app, []byte(text(p2)), 0o644)
	reloadOK(t, "web", "--name", "rll")
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", p2)); err != nil {
		t.Errorf("port %d: %v", p2, err)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p1), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts after it was removed", p1)
	}
	// A balance change is refused, and nothing changes.
	os.WriteFile(app, []byte(text(p2)+"    balance: reuseport\n"), 0o644)
	if _, errs, code := ctl(t, "reload", "web", "--name", "rll"); code != 1 || !strings.Contains(errs, "balance changed") {
		t.Errorf("balance change: exit %d, %s", code, errs)
	}
}

// TestScaleSurvivesReload: a count set with `launch scale` wins over -i
// and the file until the file's instances changes.
func TestScaleSurvivesReload(t *testing.T) {
	port := freePort(t)
	text := func(extra string) string {
		return fmt.Sprintf("apps:\n  - name: web\n    script: %s/hello\n    listen: [\"127.0.0.1:%d\"]\n    ready: notify\n%s", binDir, port, extra)
	}
	app := writeFile(t, "app.yaml", text(""))
	m := startMaster(t, "-i", "1", "--name", "rlsc", app)
	m.waitFor("web: ready", 10*time.Second)
	ctlOK(t, "scale", "web", "3", "--name", "rlsc")
	waitWorkers(t, "rlsc", 10*time.Second, "3 online", func(rs []workerJSON) bool { return online(rs) == 3 })
	res := reloadOK(t, "web", "--name", "rlsc")
	if res.Apps[0].Replaced != 3 {
		t.Errorf("reload replaced %d, want 3", res.Apps[0].Replaced)
	}
	if rows := lsJSON(t, "rlsc"); len(rows) != 3 {
		t.Errorf("after a reload, the scaled count was lost: %+v", rows)
	}
	// The file changes instances: that count ends `launch scale`'s; -i
	// (1) then wins over the file's 2.
	os.WriteFile(app, []byte(text("    instances: 2\n")), 0o644)
	reloadOK(t, "web", "--name", "rlsc")
	waitWorkers(t, "rlsc", 10*time.Second, "1 worker (-i)", func(rs []workerJSON) bool { return len(rs) == 1 && online(rs) == 1 })
}

// TestReloadFailureRestoresCount: a failed reload that lowered instances
// puts the count back; a stopped app's added address refuses connections
// instead of queueing them.
func TestReloadFailureRestoresCount(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	replaceFile(t, filepath.Join(binDir, "hello"), bin)
	p1, p2 := freePort(t), freePort(t)
	text := func(extra string, ports ...int) string {
		var l []string
		for _, p := range ports {
			l = append(l, fmt.Sprintf(`"127.0.0.1:%d"`, p))
		}
		return fmt.Sprintf("apps:\n  - name: web\n    script: %s\n    listen: [%s]\n    ready: notify\n    listen_timeout: 2s\n    env: { CRASH_ON_START: \"1\" }\n%s", bin, strings.Join(l, ", "), extra)
	}
	app := writeFile(t, "app.yaml", text("    instances: 3\n", p1))
	m := startMaster(t, "--name", "rlfc", app)
	m.waitFor("web: ready", 10*time.Second)
	replaceFile(t, filepath.Join(binDir, "crashy"), bin)
	os.WriteFile(app, []byte(text("    instances: 2\n", p1)), 0o644)
	if _, errs, code := ctl(t, "reload", "web", "--name", "rlfc"); code != 1 {
		t.Fatalf("reload onto a crashing build: exit %d, %s", code, errs)
	}
	waitWorkers(t, "rlfc", 10*time.Second, "3 online again after the failed reload", func(rs []workerJSON) bool { return online(rs) == 3 })

	// Stopped, then reloaded with a second address: both refuse.
	replaceFile(t, filepath.Join(binDir, "hello"), bin)
	ctlOK(t, "stop", "web", "--name", "rlfc")
	os.WriteFile(app, []byte(text("    instances: 3\n", p1, p2)), 0o644)
	reloadOK(t, "web", "--name", "rlfc")
	for _, p := range []int{p1, p2} {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err == nil {
			c.Close()
			t.Errorf("port %d of a stopped app accepts connections", p)
		}
	}
	ctlOK(t, "start", "web", "--name", "rlfc")
	waitWorkers(t, "rlfc", 10*time.Second, "3 online after start", func(rs []workerJSON) bool { return online(rs) == 3 })
	for _, p := range []int{p1, p2} {
		if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", p)); err != nil {
			t.Errorf("port %d after start: %v", p, err)
		}
	}
}
