package workers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// notifyListener is one worker's NOTIFY_SOCKET: a unix datagram socket
// only that worker is told about, so every datagram on it is that worker's
// (no credential matching needed). It understands sd_notify's READY=1 and
// keeps STATUS= lines.
type notifyListener struct {
	path string
	conn *net.UnixConn
	proc *Process
	once sync.Once
	done chan struct{}
}

// listenNotify binds the worker's notify socket. Only the worker's user
// may write to it (mode 0600, owned by cred's uid when the worker runs as
// another user); the directory is searchable but not listable.
func listenNotify(path string, p *Process, cred *syscall.Credential) (*notifyListener, error) {
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("notify socket %s: %w", path, err)
		}
	}
	return &notifyListener{path: path, conn: conn, proc: p, done: make(chan struct{})}, nil
}

func (n *notifyListener) start() { go n.read() }

// read is owned by the worker's Process; it ends when close is called
// (on reap) or the socket fails.
func (n *notifyListener) read() {
	defer close(n.done)
	buf := make([]byte, 4096)
	for {
		k, err := n.conn.Read(buf)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(buf[:k]), "\n") {
			switch {
			case line == "READY=1":
				n.proc.markReady()
			case strings.HasPrefix(line, "STATUS="):
				n.proc.addNote(strings.TrimPrefix(line, "STATUS="))
			}
		}
	}
}

func (n *notifyListener) close() {
	n.once.Do(func() {
		n.conn.Close()
		os.Remove(n.path)
	})
}

// ipcChannel is a Node IPC channel: a socketpair whose child end the worker
// gets as NODE_CHANNEL_FD; Node then speaks newline-delimited JSON on it.
// process.send('ready') arrives as the line "ready" in quotes, which is
// PM2's wait_ready signal.
type ipcChannel struct {
	child  *os.File
	parent *os.File
	proc   *Process
	once   sync.Once
}

func newIPC(p *Process) (*ipcChannel, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ipc socketpair: %w", err)
	}
	// Non-blocking on our end puts it in Go's poller, so close interrupts
	// a pending read; the worker's end stays blocking.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("ipc socket: %w", err)
	}
	return &ipcChannel{
		parent: os.NewFile(uintptr(fds[0]), "ipc-parent"),
		child:  os.NewFile(uintptr(fds[1]), "ipc-child"),
		proc:   p,
	}, nil
}

func (c *ipcChannel) start() { go c.read() }

// read ends at EOF (the worker exited or closed the channel) or on close.
func (c *ipcChannel) read() {
	sc := bufio.NewScanner(c.parent)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		var msg any
		if json.Unmarshal(line, &msg) != nil {
			continue
		}
		if isReadyMessage(msg) {
			c.proc.markReady()
		}
	}
}

// isReadyMessage accepts process.send('ready') and PM2-style objects
// ({"type":"ready"}, {"data":"ready"}).
func isReadyMessage(msg any) bool {
	switch m := msg.(type) {
	case string:
		return m == "ready"
	case map[string]any:
		return m["type"] == "ready" || m["data"] == "ready"
	}
	return false
}

func (c *ipcChannel) close() {
	c.once.Do(func() {
		c.parent.Close()
		c.child.Close()
	})
}
