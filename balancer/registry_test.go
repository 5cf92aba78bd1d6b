package balancer

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/launch-go/launch/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func app(name string, addrs ...string) *config.App {
	a := &config.App{Name: name, Balance: config.BalanceShared}
	for _, s := range addrs {
		l := config.Listen{Network: config.TCP, Address: s}
		if p, ok := strings.CutPrefix(s, "unix:"); ok {
			l = config.Listen{Network: config.Unix, Address: p, Mode: 0o600}
		}
		a.Listen = append(a.Listen, l)
	}
	return a
}

func TestBindSharedAndFiles(t *testing.T) {
	r := NewRegistry()
	defer r.Close()
	sock := filepath.Join(t.TempDir(), "a.sock")
	set, err := r.Bind(app("web", "127.0.0.1:0", "[::1]:0", "unix:"+sock))
	if err != nil {
		if strings.Contains(err.Error(), "[::1]") {
			t.Skip("no IPv6 loopback here")
		}
		t.Fatal(err)
	}
	f0, n0 := set.Files(0)
	f1, n1 := set.Files(1)
	if len(f0) != 3 || f0[0] != f1[0] || n0[0] != "web" || n1[2] != "web" {
		t.Errorf("shared mode must hand every slot the same sockets: %v %v", n0, n1)
	}
	if set.Port() == 0 || !strings.HasPrefix(set.String(), "127.0.0.1:") || !strings.Contains(set.String(), "unix:"+sock) {
		t.Errorf("port %d, addrs %q", set.Port(), set.String())
	}
	// The fds are blocking, like systemd's: a worker may accept in blocking mode.
	fl, err := unixFcntl(int(f0[0].Fd()))
	if err != nil || fl&syscall.O_NONBLOCK != 0 {
		t.Errorf("listening fd flags %#x (err %v), want blocking", fl, err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("unix socket mode: %v %v", fi.Mode(), err)
	}
	if _, err := r.Bind(app("web", "127.0.0.1:0")); err == nil {
		t.Error("binding an app twice succeeded")
	}
	r.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Error("unix socket file left after Close")
	}
}

func TestAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := NewRegistry()
	defer r.Close()
	_, err = r.Bind(app("web", "127.0.0.1:0", l.Addr().String()))
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "bind "+l.Addr().String()) {
		t.Errorf("err = %v, want EADDRINUSE naming %s", err, l.Addr())
	}
	// A live unix socket is in use; a stale one is replaced.
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	ul, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if _, err := r.Bind(app("u1", "unix:"+live)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("live unix socket: err = %v, want EADDRINUSE", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	sl, _ := net.Listen("unix", stale)
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	if _, err := r.Bind(app("u2", "unix:"+stale)); err != nil {
		t.Errorf("stale unix socket not replaced: %v", err)
	}
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o600)
	if _, err := r.Bind(app("u3", "unix:"+notSock)); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: err = %v", err)
	}
}

func TestPauseRefusesResumeKeepsPort(t *testing.T) {
	r := NewRegistry()
	defer r.Close()
	// Bind an explicit port, as users do; then also a port-0 one.
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := probe.Addr().String()
	probe.Close()
	set, err := r.Bind(app("web", addr))
	if err != nil {
		t.Fatal(err)
	}
	queued, err := net.Dial("tcp", addr) // waits in the accept queue
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	n, err := set.Pause()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("Pause reset %d queued connections, want 1", n)
	}
	t0 := time.Now()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("paused socket accepted a connection")
	} else if !strings.Contains(err.Error(), "refused") || time.Since(t0) > 500*time.Millisecond {
		t.Errorf("dial to paused socket: %v after %s, want refused at once", err, time.Since(t0))
	}
	// Nobody else can take the port while paused.
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Error("the port was free while paused")
	}
	if err := set.Resume(); err != nil {
		t.Fatal(err)
	}
	if set.String() != addr {
		t.Errorf("after resume: %s, want %s", set.String(), addr)
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial after resume: %v", err)
	}
	c.Close()

	set0, err := r.Bind(app("zero", "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	before := set0.String()
	set0.Pause()
	if err := set0.Resume(); err != nil || set0.String() != before {
		t.Errorf("port-0 socket resumed on %s (err %v), want %s", set0.String(), err, before)
	}
}

// TestRebindAfterTraffic: connections the socket accepted and closed
// (TIME_WAIT on the server side) must not keep a new master from binding
// the same address.
func TestRebindAfterTraffic(t *testing.T) {
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := probe.Addr().String()
	probe.Close()
	r := NewRegistry()
	set, err := r.Bind(app("web", addr))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := set.Files(0)
	l, err := net.FileListener(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := l.Accept()
		s.Close() // the server closes first: TIME_WAIT is on its side
		c.Close()
	}
	l.Close()
	r.Close()
	r2 := NewRegistry()
	defer r2.Close()
	if _, err := r2.Bind(app("web", addr)); err != nil {
		t.Errorf("rebind after server-side TIME_WAIT: %v", err)
	}
}
