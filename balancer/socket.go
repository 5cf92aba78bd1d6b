package balancer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/launch-go/launch/config"
)

// backlog is passed to listen(2); the kernel caps it at net.core.somaxconn.
const backlog = 65535

// Socket is one listening socket the master holds. Its fd is blocking and
// close-on-exec in the master, as systemd hands sockets over: workers get
// a dup at fd 3.. and may use it blocking or not.
type Socket struct {
	// Listen is the address as configured.
	Listen config.Listen
	// Name is this socket's LISTEN_FDNAMES entry.
	Name string
	// ReusePort says SO_REUSEPORT is set (reuseport mode).
	ReusePort bool

	file   *os.File
	bound  unix.Sockaddr // the address actually bound (port resolved)
	family int
	paused bool
}

// File is the socket's fd, owned by the Socket; do not close it.
func (s *Socket) File() *os.File { return s.file }

// Port is the bound TCP port, or 0 for a unix socket.
func (s *Socket) Port() int {
	switch sa := s.bound.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return 0
}

// Addr is the bound address as a user would write it ("127.0.0.1:8080",
// "unix:/run/app.sock"); for port 0 it shows the port the kernel chose.
func (s *Socket) Addr() string {
	switch sa := s.bound.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	}
	return s.Listen.String()
}

// bindSocket creates, binds and listens on l.
func bindSocket(l config.Listen, reuseport bool) (*Socket, error) {
	s := &Socket{Listen: l, ReusePort: reuseport}
	if l.Network == config.Unix {
		if err := s.bindUnix(); err != nil {
			return nil, err
		}
		return s, nil
	}
	sa, family, v6only, err := resolveTCP(l.Address)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", l.Address, err)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bind %s: socket: %w", l.Address, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("bind %s: SO_REUSEADDR: %w", l.Address, err)
	}
	if reuseport {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return nil, fmt.Errorf("bind %s: SO_REUSEPORT: %w", l.Address, err)
		}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(v6only)); err != nil {
			return nil, fmt.Errorf("bind %s: IPV6_V6ONLY: %w", l.Address, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind %s: %w", l.Address, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, fmt.Errorf("listen %s: %w", l.Address, err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname %s: %w", l.Address, err)
	}
	ok = true
	s.file = os.NewFile(uintptr(fd), "listen:"+l.Address)
	s.bound, s.family = bound, family
	return s, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// resolveTCP turns "host:port" into a sockaddr. An empty host means every
// address, IPv4 and IPv6 (dual stack, like Go's net.Listen).
func resolveTCP(addr string) (unix.Sockaddr, int, bool, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, false, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, 0, false, fmt.Errorf("port %q: want a number from 0 to 65535", portStr)
	}
	if host == "" {
		if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
			unix.Close(fd)
			return &unix.SockaddrInet6{Port: int(port)}, unix.AF_INET6, false, nil
		}
		return &unix.SockaddrInet4{Port: int(port)}, unix.AF_INET, false, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil || len(ips) == 0 {
			return nil, 0, false, fmt.Errorf("resolve %q: %w", host, lerr)
		}
		ip = ips[0]
		for _, cand := range ips {
			if cand.Is4() {
				ip = cand
				break
			}
		}
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}, unix.AF_INET, false, nil
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}, unix.AF_INET6, true, nil
}

func (s *Socket) bindUnix() error {
	path := s.Listen.Address
	if err := removeStaleUnix(path); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bind unix:%s: socket: %w", path, err)
	}
	sa := &unix.SockaddrUnix{Name: path}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bind unix:%s: %w", path, err)
	}
	mode := s.Listen.Mode
	if mode == 0 {
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return fmt.Errorf("bind unix:%s: chmod %o: %w", path, mode, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return fmt.Errorf("listen unix:%s: %w", path, err)
	}
	s.file = os.NewFile(uintptr(fd), "listen:unix:"+path)
	s.bound, s.family = sa, unix.AF_UNIX
	return nil
}

// removeStaleUnix removes a socket file nobody listens on (left by a dead
// master) and refuses to touch one that answers or that is not a socket.
func removeStaleUnix(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bind unix:%s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("bind unix:%s: the path exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("bind unix:%s: %w (another process listens on it)", path, unix.EADDRINUSE)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("bind unix:%s: remove stale socket: %w", path, err)
	}
	return nil
}

// queued returns how many connections wait in the accept queue (Linux
// reports it as tcpi_unacked on a listening socket); -1 if unknown.
func (s *Socket) queued() int {
	if s.family == unix.AF_UNIX {
		return -1
	}
	info, err := unix.GetsockoptTCPInfo(int(s.file.Fd()), unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return -1
	}
	return int(info.Unacked)
}

// pause stops the socket from taking new connections, so clients are
// refused at once instead of waiting on a queue nobody accepts from.
// Connections already queued are reset; pause returns how many (-1 if
// unknown). A TCP socket keeps its port: shutdown(SHUT_RD) stops
// listening without unbinding an explicitly bound port (and takes a
// SO_REUSEPORT socket out of its group). A unix socket's file is removed,
// so connects fail at once; its fd stays open until resume binds anew.
func (s *Socket) pause() (int, error) {
	if s.paused {
		return 0, nil
	}
	n := s.queued()
	if s.family == unix.AF_UNIX {
		os.Remove(s.Listen.Address)
	} else {
		fd := int(s.file.Fd())
		if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil {
			return n, fmt.Errorf("pause %s: %w", s.Addr(), err)
		}
		// While it does not listen, a socket with SO_REUSEADDR lets any
		// other SO_REUSEADDR socket bind the port under it; clear it for
		// the pause. (It must stay set otherwise: accepted connections
		// inherit it, and their TIME_WAIT leftovers would keep the next
		// master from binding.)
		if !s.ReusePort {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0)
		}
	}
	s.paused = true
	return n, nil
}

// resume makes a paused socket listen again on the same address. If the
// kernel gave a TCP socket another port (it does for port 0 binds), or for
// a unix socket, the address is bound anew, and the old fd closed only
// once that worked: on error the socket stays paused with a valid fd.
func (s *Socket) resume() error {
	if !s.paused {
		return nil
	}
	if s.family != unix.AF_UNIX {
		fd := int(s.file.Fd())
		if err := unix.Listen(fd, backlog); err == nil {
			if now, err := unix.Getsockname(fd); err == nil && samePort(now, s.bound) {
				_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				s.paused = false
				return nil
			}
			// listen() autobound another port: stop it again.
			_ = unix.Shutdown(fd, unix.SHUT_RD)
		}
	}
	l := s.Listen
	if s.family != unix.AF_UNIX {
		l.Address = s.Addr() // the port the first bind chose
	}
	fresh, err := bindSocket(l, s.ReusePort)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	s.file.Close()
	s.file, s.bound, s.paused = fresh.file, fresh.bound, false
	return nil
}

func samePort(a, b unix.Sockaddr) bool {
	pa, pb := 0, 0
	switch sa := a.(type) {
	case *unix.SockaddrInet4:
		pa = sa.Port
	case *unix.SockaddrInet6:
		pa = sa.Port
	}
	switch sb := b.(type) {
	case *unix.SockaddrInet4:
		pb = sb.Port
	case *unix.SockaddrInet6:
		pb = sb.Port
	}
	return pa == pb
}

func (s *Socket) close() error {
	if s.family == unix.AF_UNIX && !s.paused {
		os.Remove(s.Listen.Address)
	}
	return s.file.Close()
}
