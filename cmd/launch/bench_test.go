package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/launch-go/launch/bench"
)

// runBenchCmd runs `launch bench args...` (the binary TestMain built) and
// returns its stdout, stderr and exit code.
func runBenchCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "launch"), append([]string{"bench"}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("launch bench: %v", err)
	}
	return out.String(), errb.String(), code
}

// benchJSON runs launch bench with -o json and decodes the report.
func benchJSON(t *testing.T, args ...string) bench.Report {
	t.Helper()
	out, errs, code := runBenchCmd(t, append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("launch bench %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("launch bench %v -o json: not JSON (%v):\n%s", args, err, out)
	}
	return r
}

// TestBenchJSONAndChart: the hello example at 1 and 2 instances gives a
// JSON row per count with real throughput, and a well-formed chart. (A
// copy of examples/hello/app.yaml on a free port, with the hello binary
// built by TestMain: the example's own port 8080 may be busy.)
func TestBenchJSONAndChart(t *testing.T) {
	app := helloApp(t, freePort(t), "")
	svg := filepath.Join(t.TempDir(), "scaling.svg")
	page := filepath.Join(t.TempDir(), "scaling.html")
	r := benchJSON(t, app, "--instances", "1,2", "--duration", "2s", "--warmup", "500ms", "-c", "16", "--svg", svg, "--html", page)
	if len(r.Runs) != 2 || r.Runs[0].Instances != 1 || r.Runs[1].Instances != 2 {
		t.Fatalf("runs %+v, want one row for 1 and one for 2 instances", r.Runs)
	}
	for _, row := range r.Runs {
		if row.RPS <= 0 || row.Requests <= 0 || row.P50Ms <= 0 || row.P99Ms < row.P50Ms || row.Availability != 1 {
			t.Errorf("%d instances: %+v; want throughput, latencies, no failure", row.Instances, row)
		}
		// Not every worker need have answered: with keep-alive on a shared
		// socket, one worker may accept every connection.
		if row.Fairness == nil || len(row.PerWorker) < 1 || len(row.PerWorker) > row.Instances || row.PerWorker[""] != 0 {
			t.Errorf("%d instances: fairness %v, per worker %v: hello sends X-Pid", row.Instances, row.Fairness, row.PerWorker)
		}
	}
	if r.Runs[0].Speedup != 1 || r.App != "web" || !strings.HasPrefix(r.URL, "http://127.0.0.1:") {
		t.Errorf("report %+v", r)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	checkSVGLabels(t, b)
	h, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(h, []byte("<!DOCTYPE html>")) || !bytes.Contains(h, []byte("<svg")) || !bytes.Contains(h, []byte(bench.LabelThroughput)) {
		t.Errorf("the HTML page lacks the doctype, the chart or its labels:\n%.300s", h)
	}
}

func checkSVGLabels(t *testing.T, svg []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not valid XML: %v", err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			text.Write(cd)
		}
	}
	for _, label := range []string{bench.LabelInstances, bench.LabelThroughput, bench.LabelP99} {
		if !strings.Contains(text.String(), label) {
			t.Errorf("the SVG lacks the axis label %q", label)
		}
	}
}

// TestBenchRefusedTarget: a target nobody listens on is an error that
// says so, with a non-zero exit, not a row of zeros.
func TestBenchRefusedTarget(t *testing.T) {
	// hello binds PORT itself (no listen key); the bench loads another port.
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: web
    script: %s/hello
    ready: notify
    env: { PORT: "%d" }
`, binDir, freePort(t)))
	out, errs, code := runBenchCmd(t, app, "--instances", "1", "--duration", "1s", "--warmup", "300ms", "--target", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if code != exitFailure || !strings.Contains(errs, "connection refused") || !strings.Contains(errs, "no request succeeded") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and a 'connection refused' error", code, errs)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing (no rows)", out)
	}
}

// TestBenchUsageErrors: refused before anything starts, exit 2.
func TestBenchUsageErrors(t *testing.T) {
	hello := helloApp(t, freePort(t), "")
	remote := writeFile(t, "remote.yaml", fmt.Sprintf("apps:\n  - name: web\n    script: %s/hello\n    listen: [\"192.0.2.1:8080\"]\n", binDir))
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"non-loopback listen", []string{remote}, "loopback addresses only"},
		{"non-loopback target", []string{hello, "--target", "192.0.2.1:80"}, "loopback addresses only"},
		{"unknown app", []string{hello, "api"}, `no app "api"`},
		{"bad output", []string{hello, "-o", "yaml"}, "want table or json"},
		{"flags before the file", []string{"-o", "yaml", hello}, "want table or json"},
		{"bad cpus", []string{hello, "--cpus", "1-x"}, "not a CPU number"},
		{"bad instances", []string{hello, "--instances", "0"}, "not a count"},
	} {
		_, errs, code := runBenchCmd(t, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", c.name, code, errs, c.want)
		}
	}
}

// TestBenchReload: a rolling reload under load, reported apart from the
// steady state.
func TestBenchReload(t *testing.T) {
	app := helloApp(t, freePort(t), "")
	r := benchJSON(t, app, "--instances", "2", "--duration", "3s", "--warmup", "300ms", "-c", "8", "--reload", "1")
	rl := r.Runs[0].Reload
	if rl == nil || rl.Requested != 1 {
		t.Fatalf("reload stats %+v, want 1 reload requested", rl)
	}
	if rl.Completed == 0 {
		t.Skipf("the master did not report the end of the reload (neither RELOADING=1/READY=1 nor a 'reload done' line): %+v", rl)
	}
	if rl.During.Requests == 0 || rl.Steady.Requests == 0 || len(rl.Seconds) != 1 {
		t.Errorf("reload stats %+v: want requests both during and outside the reload", rl)
	}
	if rl.During.Failed > 0 {
		t.Logf("note: %d requests failed during the reload", rl.During.Failed)
	}
}

// TestBenchChaos: workers SIGKILLed under load; every pid killed was a
// worker of the bench's own master (gone now), and availability is
// reported.
func TestBenchChaos(t *testing.T) {
	app := helloApp(t, freePort(t), "")
	r := benchJSON(t, app, "--instances", "2", "--duration", "3s", "--warmup", "300ms", "-c", "8", "--chaos", "--chaos-interval", "1s")
	c := r.Runs[0].Chaos
	if c == nil || len(c.Killed) == 0 {
		t.Fatalf("chaos stats %+v: want at least one worker killed", c)
	}
	for _, pid := range c.Killed {
		if _, seen := r.Runs[0].PerWorker[fmt.Sprint(pid)]; !seen {
			t.Errorf("killed pid %d never answered a request (workers: %v)", pid, r.Runs[0].PerWorker)
		}
		if alive(pid) {
			t.Errorf("killed pid %d still runs", pid)
		}
	}
	if c.Availability <= 0.5 || c.Availability > 1 {
		t.Errorf("availability %v", c.Availability)
	}
}

func TestBenchTargetAndInstances(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", ""},
		{"127.0.0.2:80", "127.0.0.2:80", ""},
		{"0.0.0.0:8080", "127.0.0.1:8080", ""},
		{":8080", "127.0.0.1:8080", ""},
		{"[::]:8080", "[::1]:8080", ""},
		{"[::1]:8080", "[::1]:8080", ""},
		{"localhost:8080", "127.0.0.1:8080", ""},
		{"10.0.0.1:8080", "", "loopback addresses only"},
		{"example.com:80", "", "loopback addresses only"},
		{"127.0.0.1:0", "", "fixed port"},
		{"127.0.0.1", "", "missing port"},
	} {
		got, err := loopbackTarget(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("loopbackTarget(%q) = %q, %v; want an error with %q", c.in, got, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("loopbackTarget(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"", []int{1, 2, 3, 4}},
		{"max", []int{4}},
		{"1,2,4", []int{1, 2, 4}},
		{"4,1-2,2", []int{1, 2, 4}},
		{"2-max", []int{2, 3, 4}},
	} {
		if got, err := parseInstanceList(c.in, 4); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseInstanceList(%q, 4) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"0", "x", "3-1", "1,,2", "2000"} {
		if got, err := parseInstanceList(bad, 4); err == nil {
			t.Errorf("parseInstanceList(%q) = %v, want an error", bad, got)
		}
	}
}

// fakeReloadMaster is a benchMaster around a shell that ignores SIGHUP,
// so a test can play the master's side of the reload protocol.
func fakeReloadMaster(t *testing.T) *benchMaster {
	t.Helper()
	cmd := exec.Command("sh", "-c", `trap "" HUP; sleep 20`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &benchMaster{cmd: cmd, states: make(chan string, 8), logs: make(chan string, 8), exited: make(chan struct{})}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-m.exited
	})
	return m
}

// TestBenchReloadProtocol: how reloads() tells a reload's end, on both
// protocols: RELOADING=1 then READY=1 (systemd's Type=notify-reload)
// and, from a master without it, the "reload done" log line. With both,
// the late log line of one reload must not end the next one.
func TestBenchReloadProtocol(t *testing.T) {
	for _, c := range []struct {
		name      string
		play      func(m *benchMaster, window *atomic.Bool)
		completed int
		signal    string
	}{
		{"sd_notify, log line after READY=1", func(m *benchMaster, window *atomic.Bool) {
			for range 2 {
				waitWindow(t, window, true)
				m.states <- "RELOADING=1"
				time.Sleep(100 * time.Millisecond)
				m.states <- "READY=1"
				m.logs <- "reload done" // late: must not end the next reload
				waitWindow(t, window, false)
			}
		}, 2, "sd_notify"},
		{"log lines only", func(m *benchMaster, window *atomic.Bool) {
			waitWindow(t, window, true)
			m.logs <- "reload failed"
			waitWindow(t, window, false)
			waitWindow(t, window, true)
			m.logs <- "reload done"
			waitWindow(t, window, false)
		}, 1, "log"},
	} {
		m := fakeReloadMaster(t)
		var window atomic.Bool
		done := make(chan bench.ReloadStats)
		go func() { done <- m.reloads(context.Background(), 2, 1200*time.Millisecond, &window) }()
		c.play(m, &window)
		st := <-done
		if st.Requested != 2 || st.Completed != c.completed || st.Signal != c.signal || len(st.Seconds) != 2 {
			t.Errorf("%s: %+v; want 2 requested, %d completed, signal %s, 2 durations", c.name, st, c.completed, c.signal)
		}
		if c.signal == "log" && st.Failed != 1 {
			t.Errorf("%s: %d failed, want 1", c.name, st.Failed)
		}
		if c.signal == "sd_notify" && (st.Seconds[0] < 0.1 || st.Seconds[1] < 0.1) {
			t.Errorf("%s: reloads took %v s; the second ended early on the first's log line", c.name, st.Seconds)
		}
	}
}

func waitWindow(t *testing.T, w *atomic.Bool, want bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); w.Load() != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reload window never became %v", want)
		}
	}
}
