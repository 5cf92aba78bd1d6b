package balancer

import (
	"errors"
	"fmt"
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
	f0, n0, _ := set.Files(0)
	f1, n1, _ := set.Files(1)
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
	n, err := set.Pause(-1)
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
	if err := set.Resume(-1); err != nil {
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
	set0.Pause(-1)
	if err := set0.Resume(-1); err != nil || set0.String() != before {
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
	files, _, _ := set.Files(0)
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

func reuseApp(addr string) *config.App {
	a := app("web", addr)
	a.Balance = config.BalanceReusePort
	return a
}

func TestReusePortSlots(t *testing.T) {
	r := NewRegistry()
	defer r.Close()
	set, err := r.Bind(reuseApp("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if !set.PerSlot() || set.Sockets() != 1 {
		t.Fatalf("after Bind: per-slot %v, %d sockets; want slot 0 bound", set.PerSlot(), set.Sockets())
	}
	f0, _, err := set.Files(0)
	if err != nil {
		t.Fatal(err)
	}
	f1, names, err := set.Files(1)
	if err != nil {
		t.Fatal(err)
	}
	if f0[0] == f1[0] || names[0] != "web" || set.Sockets() != 2 {
		t.Errorf("slots must get their own sockets: %v %v, %d sockets", f0, f1, set.Sockets())
	}
	again, _, _ := set.Files(1)
	if again[0] != f1[0] {
		t.Error("a slot's socket changed between calls: a replacement must inherit it")
	}
	addr := set.String()
	if _, err := set.Pause(1); err != nil || !set.Paused(1) || set.Paused(0) {
		t.Errorf("Pause(1): err %v, paused(1) %v, paused(0) %v", err, set.Paused(1), set.Paused(0))
	}
	// With slot 1 paused, every connection reaches slot 0's queue.
	l0, _ := net.FileListener(f0[0])
	defer l0.Close()
	for i := 0; i < 20; i++ {
		c, err := net.DialTimeout("tcp", l0.Addr().String(), time.Second)
		if err != nil {
			t.Fatalf("dial %s with slot 1 paused: %v", addr, err)
		}
		s, err := l0.Accept()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		c.Close()
	}
	if err := set.Resume(1); err != nil || set.Paused(1) {
		t.Errorf("Resume(1): %v", err)
	}
	if err := set.CloseSlot(1); err != nil || set.Sockets() != 1 {
		t.Errorf("CloseSlot(1): %v, %d sockets left", err, set.Sockets())
	}
}

// TestReusePortRefusesStaleListener: a reuseport bind would silently join
// a stale listener of the same user; the first, plain bind catches it.
func TestReusePortRefusesStaleListener(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, 15 /* SO_REUSEPORT */, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	syscall.Listen(fd, 8)
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	r := NewRegistry()
	defer r.Close()
	if _, err := r.Bind(reuseApp(addr)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("reuseport bind beside a stale reuseport listener: %v, want EADDRINUSE", err)
	}
	u := app("u", "unix:"+filepath.Join(t.TempDir(), "s.sock"))
	u.Balance = config.BalanceReusePort
	if _, err := r.Bind(u); err == nil || !strings.Contains(err.Error(), "reuseport needs TCP") {
		t.Errorf("unix + reuseport: %v", err)
	}
}
