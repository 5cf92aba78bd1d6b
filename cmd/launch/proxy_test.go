package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proxyRequests is the per-worker request count of `ls -o json`.
func proxyRequests(t *testing.T, name string) map[int]uint64 {
	t.Helper()
	out := map[int]uint64{}
	for _, r := range lsJSON(t, name) {
		if r.Requests == nil {
			t.Fatalf("ls -o json: no requests for %+v", r)
		}
		if r.State == "online" {
			out[r.PID] = *r.Requests
		}
	}
	return out
}

// TestProxyPythonHTTPServer: an app that can only bind $PORT (python's
// http.server) runs at -i 2 behind the proxy, and both instances serve.
func TestProxyPythonHTTPServer(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	port := freePort(t)
	script := writeFile(t, "serve.sh", "#!/bin/sh\nexec python3 -m http.server \"$PORT\" --bind \"$HOST\"\n")
	os.Chmod(script, 0o755)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: py
    script: %s
    listen: ["127.0.0.1:%d"]
    balance: proxy
    proxy: { strategy: round_robin }
`, script, port))
	m := startMaster(t, "-i", "2", "--name", "pxpy", app)
	m.waitFor("py: ready", 15*time.Second)
	for i := 0; i < 20; i++ {
		resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	reqs := proxyRequests(t, "pxpy")
	if len(reqs) != 2 {
		t.Fatalf("workers: %v", reqs)
	}
	for pid, n := range reqs {
		if n < 5 {
			t.Errorf("worker %d served %d of 20 (round robin)", pid, n)
		}
	}
	if out := ctlOK(t, "ls", "--name", "pxpy"); !strings.Contains(out, "REQUESTS") {
		t.Errorf("ls table lacks REQUESTS:\n%s", out)
	}
}

// TestProxyGoAppKillAndReload: the example Go app binding PORT itself
// (no LISTEN_FDS in proxy mode), round robin splits evenly; a worker
// killed with SIGKILL under load costs no GET; reloads of a naive app
// (crashy dies at once on SIGTERM) lose nothing, since the proxy drains a
// worker before it is signalled.
func TestProxyGoAppKillAndReload(t *testing.T) {
	port := freePort(t)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: web
    script: %s/hello
    listen: ["127.0.0.1:%d"]
    balance: proxy
    proxy: { strategy: round_robin }
`, binDir, port))
	m := startMaster(t, "-i", "2", "--name", "pxgo", app)
	m.waitFor("web: ready", 10*time.Second)
	counts := map[int]int{}
	for i := 0; i < 200; i++ {
		pid, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		counts[pid]++
	}
	for pid, n := range counts {
		if n < 90 || n > 110 {
			t.Errorf("round robin: worker %d served %d of 200", pid, n)
		}
	}
	tr := startTraffic(fmt.Sprintf("http://127.0.0.1:%d/", port), 100000)
	time.Sleep(300 * time.Millisecond)
	rows := lsJSON(t, "pxgo")
	syscall.Kill(rows[0].PID, syscall.SIGKILL)
	waitWorkers(t, "pxgo", 5*time.Second, "2 online after the kill", func(rs []workerJSON) bool { return online(rs) == 2 })
	time.Sleep(300 * time.Millisecond)
	tr.end()
	if len(tr.failures) > 0 {
		t.Errorf("GETs failed across kill -9: %v", tr.failures)
	}
	if reqs := proxyRequests(t, "pxgo"); len(reqs) != 2 {
		t.Errorf("after the kill: %v", reqs)
	}

	// The naive app: reloads under load, zero failures.
	naive := writeFile(t, "naive.yaml", fmt.Sprintf(`apps:
  - name: naive
    script: %s/crashy
    listen: ["127.0.0.1:%d"]
    balance: proxy
`, binDir, port+0))
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.wait(10 * time.Second)
	m2 := startMaster(t, "-i", "2", "--name", "pxnaive", naive)
	m2.waitFor("naive: ready", 10*time.Second)
	tr = startTraffic(fmt.Sprintf("http://127.0.0.1:%d/", port), 100000)
	for i := 0; i < 5; i++ {
		reloadOK(t, "naive", "--name", "pxnaive")
	}
	tr.end()
	t.Logf("naive app, 5 reloads in proxy mode: %d requests, %d failures", tr.ok.Load(), len(tr.failures))
	if len(tr.failures) > 0 {
		t.Errorf("naive app reloads in proxy mode: %v", tr.failures)
	}
}

// TestProxyTCPAndGarbage: protocol tcp forwards bytes (HTTP here, as a
// stand-in for any TCP protocol), and garbage on an http proxy's public
// port neither stops the master nor blocks other clients.
func TestProxyTCPAndGarbage(t *testing.T) {
	tport, hport := freePort(t), freePort(t)
	app := writeFile(t, "app.yaml", fmt.Sprintf(`apps:
  - name: tcp
    script: %[1]s/hello
    listen: ["127.0.0.1:%[2]d"]
    balance: proxy
    protocol: tcp
  - name: web
    script: %[1]s/hello
    listen: ["127.0.0.1:%[3]d"]
    balance: proxy
    proxy: { read_timeout: 1s }
`, binDir, tport, hport))
	m := startMaster(t, "-i", "2", "--name", "pxtcp", app)
	m.waitFor("web: ready", 10*time.Second)
	m.waitFor("tcp: ready", 10*time.Second)
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", tport)); err != nil {
		t.Fatalf("through the tcp proxy: %v", err)
	}
	// Garbage, a 1 MB header, a slowloris client, and 200 idle conns.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", hport))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	dial().Write([]byte("\x16\x03\x01garbage that is not http\r\n\r\n"))
	big := dial()
	go big.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"))
	dial().Write([]byte("GET / HTTP/1.1\r\nHo")) // and nothing more
	for i := 0; i < 200; i++ {
		dial()
	}
	for i := 0; i < 20; i++ {
		if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", hport)); err != nil {
			t.Fatalf("a normal client beside the garbage: %v", err)
		}
	}
	if rows := lsJSON(t, "pxtcp"); online(rows) != 4 {
		t.Errorf("after the garbage: %+v", rows)
	}
}
