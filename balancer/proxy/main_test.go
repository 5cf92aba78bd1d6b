package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's process-wide Date refresher: started once, never stops.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// A HostClient's idle-connection cleaner sleeps up to backendIdle
		// (4 s) before it sees that Close closed every connection and exits.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		// A fasthttp.Server's worker-pool cleaner sleeps up to
		// MaxIdleWorkerDuration (10 s) before it sees that Serve returned.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// startProxy serves cfg on 127.0.0.1:0 until the test ends.
func startProxy(t *testing.T, cfg Config) (*Proxy, string) {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return p, ln.Addr().String()
}

// testBackend is an in-test http server that counts its requests.
type testBackend struct {
	*httptest.Server
	hits atomic.Int64
	addr string
}

func newBackend(t *testing.T, h http.HandlerFunc) *testBackend {
	t.Helper()
	b := &testBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	b.addr = strings.TrimPrefix(b.URL, "http://")
	t.Cleanup(b.kill)
	return b
}

// kill closes the backend's listener and every connection, abruptly.
func (b *testBackend) kill() {
	b.CloseClientConnections()
	b.Close()
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

// client is a keep-alive http client for the test; its idle connections
// close when the test ends.
func client(t *testing.T, conns int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// rawRequest sends raw bytes on a fresh connection and returns what comes
// back until the proxy closes it (or d passes).
func rawRequest(t *testing.T, addr, req string, d time.Duration) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// readStatus reads one response's status line and header from br.
func readStatus(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if l == "\r\n" {
			return strings.TrimSpace(line), nil
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stat(p *Proxy, id int) (BackendStats, bool) {
	for _, s := range p.Stats() {
		if s.ID == id {
			return s, true
		}
	}
	return BackendStats{}, false
}

// pattern is a generated body of n bytes: nothing of it is ever held
// whole in memory.
type pattern struct{ n, off int64 }

var block = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := copy(b, block[p.off%int64(len(block)):])
	if int64(k) > p.n-p.off {
		k = int(p.n - p.off)
	}
	p.off += int64(k)
	return k, nil
}

func probeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var _ = fmt.Sprintf

// TestImports: proxy is a leaf: the standard library, fasthttp and
// golang.org/x/sys only (so the supervisor can wire it without a cycle).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") && !strings.HasPrefix(imp, "github.com/valyala/fasthttp") && !strings.HasPrefix(imp, "golang.org/x/sys") {
			t.Errorf("proxy imports %s: only the standard library, fasthttp and golang.org/x/sys are allowed", imp)
		}
	}
}
