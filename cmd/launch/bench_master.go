package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/launch-go/launch/bench"
)

// benchMaster is a `launch` master that `launch bench` started as a child
// process, as a user would, with a NOTIFY_SOCKET of its own to hear
// READY=1 and RELOADING=1 from.
//
// Its goroutines: one reads the notify socket into states, one reads
// the master's output (tail and log events), one waits for the process
// and closes exited. stop ends all three.
type benchMaster struct {
	cmd    *exec.Cmd
	notify *net.UnixConn
	// states receives each sd_notify assignment the master sends
	// ("READY=1", "RELOADING=1", ...), in order; logs receives "reload
	// done" and "reload failed" as the master logs them.
	states chan string
	logs   chan string
	exited chan struct{} // closed when the master has exited; waitErr is set
	// waitErr is cmd.Wait's error, written before exited is closed.
	waitErr error
	output  chan struct{} // closed when the output reader is done

	mu   sync.Mutex
	tail []string // the master's last output lines
}

// tailLines is how much of the master's output a failure shows.
const tailLines = 30

// startBenchMaster starts exe with args and a NOTIFY_SOCKET in dir; with
// cpus set, the master (and so its workers) may run only on those CPUs.
func startBenchMaster(exe string, args []string, dir string, cpus []int) (*benchMaster, error) {
	path := dir + "/notify.sock"
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	m := &benchMaster{
		notify: conn,
		states: make(chan string, 64),
		logs:   make(chan string, 64),
		exited: make(chan struct{}),
		output: make(chan struct{}),
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	cmd := exec.Command(exe, args...)
	env := []string{"NOTIFY_SOCKET=" + path, "NO_COLOR=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: a Ctrl-C at the terminal reaches launch
	// bench, which stops the master in order. Pdeathsig: a master left
	// behind by a killed launch bench stops too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := startPinned(cmd, cpus); err != nil {
		conn.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	pw.Close()
	m.cmd = cmd
	go m.readNotify()
	go m.readOutput(pr)
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// startPinned starts cmd from an OS thread restricted to cpus, so the
// process inherits that mask from its first instruction on.
func startPinned(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	restore, err := bench.PinThread(cpus)
	if err != nil {
		return err
	}
	startErr := cmd.Start()
	if err := restore(); err != nil && startErr == nil {
		return fmt.Errorf("restore CPU affinity: %w", err)
	}
	return startErr
}

func (m *benchMaster) pid() int { return m.cmd.Process.Pid }

func (m *benchMaster) readNotify() {
	defer close(m.states)
	buf := make([]byte, 4096)
	for {
		n, err := m.notify.Read(buf)
		if err != nil {
			return
		}
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			if line == "" {
				continue
			}
			select {
			case m.states <- line:
			default: // nobody listens for this many; readiness was heard long ago
			}
		}
	}
}

func (m *benchMaster) readOutput(r *os.File) {
	defer close(m.output)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		m.mu.Lock()
		m.tail = append(m.tail, line)
		if len(m.tail) > tailLines {
			m.tail = m.tail[len(m.tail)-tailLines:]
		}
		m.mu.Unlock()
		var ev string
		switch {
		case strings.HasPrefix(line, "launch: reload done"):
			ev = "reload done"
		case strings.HasPrefix(line, "launch: reload failed"):
			ev = "reload failed"
		default:
			continue
		}
		select {
		case m.logs <- ev:
		default:
		}
	}
}

// outputTail is the master's last lines of output, indented, for errors.
func (m *benchMaster) outputTail() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tail) == 0 {
		return "  (the master printed nothing)"
	}
	return "  " + strings.Join(m.tail, "\n  ")
}

// waitReady waits for READY=1, the master's exit, or timeout; only the
// first is not an error.
func (m *benchMaster) waitReady(timeout time.Duration, interrupted <-chan struct{}) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case s, ok := <-m.states:
			if !ok {
				return fmt.Errorf("notify socket closed before READY=1")
			}
			if s == "READY=1" {
				return nil
			}
		case <-m.exited:
			// Give the output reader a moment to take the last lines.
			select {
			case <-m.output:
			case <-time.After(500 * time.Millisecond):
			}
			return fmt.Errorf("the master exited before it was ready (%v); its output ends with:\n%s", m.waitErr, m.outputTail())
		case <-t.C:
			return fmt.Errorf("the master was not ready (READY=1) within %v; its output ends with:\n%s", timeout, m.outputTail())
		case <-interrupted:
			return errInterrupted
		}
	}
}

// stop ends the master: SIGTERM (a graceful stop of every worker), then
// SIGKILL if it has not exited within grace. It waits for every goroutine
// of m and may be called more than once.
func (m *benchMaster) stop(grace time.Duration) {
	select {
	case <-m.exited:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-m.exited:
		case <-t.C:
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
		t.Stop()
	}
	m.notify.Close()
	for range m.states { // until readNotify has returned
	}
	select {
	case <-m.output:
	case <-time.After(2 * time.Second):
		// A grandchild still holds the output pipe; the reader ends
		// when it exits (the master's workers die with the master).
	}
}
