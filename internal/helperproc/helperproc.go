// Package helperproc lets a test binary impersonate the programs that
// tests start as workers (os/exec's TestHelperProcess pattern): a test's
// TestMain calls Run first, and a worker started with LAUNCH_TEST_HELPER=NAME
// runs helper NAME instead of the tests.
package helperproc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/goleak"
)

// Env is the variable that selects a helper.
const Env = "LAUNCH_TEST_HELPER"

// Run runs the helper named in $LAUNCH_TEST_HELPER and exits; without it,
// it returns at once.
func Run() {
	if h := os.Getenv(Env); h != "" {
		os.Exit(helper(h))
	}
}

// Args are the arguments that keep a re-executed test binary from running
// tests; the program is os.Args[0], the helper chosen by Env.
func Args() []string { return []string{"-test.run=^$"} }

// helper runs one helper program:
//   - serve-fd3: a strict socket-activated server (uses fd 3 only when
//     LISTEN_PID is its own pid), READY=1 on NOTIFY_SOCKET, answers each
//     connection with one line "pid=.. fds=.. names=.. instance=.." (or an
//     HTTP response when HTTP=1), exits 0 on SIGTERM after closing; exits 1
//     at start when CRASH_INSTANCE equals LAUNCH_INSTANCE.
//   - exit: exits with $EXIT_CODE at once.
//   - sleep: sleeps a minute.
//   - ignore-term: ignores SIGTERM, then sends READY=1, and sleeps.
//   - with-child: starts a sleep child in its own process group, prints
//     "child PID", then sleeps (or exits when THEN_EXIT is set).
//   - flood: writes 200,000 lines and one 100 kB line as fast as it can.
//   - alloc: allocates and touches $ALLOC_MB megabytes, prints "allocated",
//     then sleeps a minute.
//   - busy: spins on eight threads for a minute (eight, so that it still gets
//     more than half a CPU on a loaded machine).
func helper(name string) int {
	switch name {
	case "serve-fd3":
		if ci := os.Getenv("CRASH_INSTANCE"); ci != "" && ci == os.Getenv("LAUNCH_INSTANCE") {
			fmt.Fprintln(os.Stderr, "instance", ci, "crashes at start")
			return 1
		}
		// A strict socket-activated server: like sd_listen_fds, it uses
		// the fds only if LISTEN_PID is its own pid.
		if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
			fmt.Fprintf(os.Stderr, "LISTEN_PID=%q is not my pid %d\n", os.Getenv("LISTEN_PID"), os.Getpid())
			return 3
		}
		n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		l, err := net.FileListener(os.NewFile(3, "fd3"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		if sock := os.Getenv("NOTIFY_SOCKET"); sock != "" {
			c, err := net.Dial("unixgram", sock)
			if err == nil {
				c.Write([]byte("STATUS=serving\nREADY=1"))
				c.Close()
			}
		}
		fmt.Println("listening on fd 3")
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() { <-term; l.Close() }()
		for {
			c, err := l.Accept()
			if err != nil {
				return 0
			}
			msg := fmt.Sprintf("pid=%d fds=%d names=%s instance=%s\n", os.Getpid(), n, os.Getenv("LISTEN_FDNAMES"), os.Getenv("LAUNCH_INSTANCE"))
			if os.Getenv("HTTP") != "" {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				bufio.NewReader(c).ReadString('\n')
				msg = fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Pid: %d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", os.Getpid(), len(msg), msg)
			}
			c.Write([]byte(msg))
			c.Close()
		}
	case "exit":
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		fmt.Fprintln(os.Stderr, "exiting with", code)
		return code
	case "sleep":
		time.Sleep(time.Minute)
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		notifyReady()
		time.Sleep(time.Minute)
		return 0
	case "with-child":
		// Starts a child in its own process group (Setpgid false: same
		// group), prints its pid, then waits or exits.
		p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^$"}, &os.ProcAttr{
			Env:   append(withoutHelper(os.Environ()), Env+"=sleep"),
			Files: []*os.File{nil, os.Stdout, os.Stderr},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 5
		}
		fmt.Printf("child %d\n", p.Pid)
		if os.Getenv("THEN_EXIT") != "" {
			return 0
		}
		time.Sleep(time.Minute)
		return 0
	case "alloc":
		mb, _ := strconv.Atoi(os.Getenv("ALLOC_MB"))
		mem := make([]byte, mb<<20)
		for i := range mem {
			mem[i] = byte(i)
		}
		fmt.Println("allocated")
		time.Sleep(time.Minute)
		runtime.KeepAlive(mem)
		return 0
	case "busy":
		end := time.Now().Add(time.Minute)
		runtime.GOMAXPROCS(8)
		for range 8 {
			go func() {
				for time.Now().Before(end) {
				}
			}()
		}
		time.Sleep(time.Minute)
		return 0
	case "flood":
		w := bufio.NewWriterSize(os.Stdout, 1<<16)
		line := strings.Repeat("x", 100)
		for i := 0; i < 200000; i++ {
			fmt.Fprintf(w, "%d %s\n", i, line)
		}
		w.Write([]byte(strings.Repeat("y", 100000) + "\n")) // one long line
		w.Flush()
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 99
}

// withoutHelper drops Env from env: os.StartProcess passes duplicates
// through, and Go's Getenv takes the first, so appending Env=sleep alone
// would start with-child again, and again.
func withoutHelper(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, Env+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// notifyReady sends READY=1 on NOTIFY_SOCKET, if there is one.
func notifyReady() {
	if sock := os.Getenv("NOTIFY_SOCKET"); sock != "" {
		if c, err := net.Dial("unixgram", sock); err == nil {
			c.Write([]byte("READY=1"))
			c.Close()
		}
	}
}

// Exit ends a TestMain that had to clean up before the leak check (a
// spawner thread, a reaper): when the tests passed it fails them if any
// goroutine is left (goleak, with opts), then exits with code.
func Exit(code int, opts ...goleak.Option) {
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
