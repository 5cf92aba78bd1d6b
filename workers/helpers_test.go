package workers

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary impersonates the programs the tests start (os/exec's
// pattern): the trampoline, and helpers chosen by LAUNCH_TEST_HELPER.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == TrampolineArg {
		Trampoline(os.Args[2:])
	}
	if h := os.Getenv("LAUNCH_TEST_HELPER"); h != "" {
		os.Exit(helper(h))
	}
	code := m.Run()
	if testReaper != nil {
		testSpawner.Close()
		testReaper.Stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	testReaper  *Reaper
	testSpawner *Spawner
)

// spawner returns the package's one spawner for tests.
func spawner(t *testing.T) *Spawner {
	t.Helper()
	if testSpawner == nil {
		r, err := StartReaper()
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "lw-")
		if err != nil {
			t.Fatal(err)
		}
		testReaper, testSpawner = r, NewSpawner(r, os.Args[0], dir)
	}
	return testSpawner
}

// helperSpec starts this test binary as helper h.
func helperSpec(name, h string, env ...string) Spec {
	return Spec{
		Name: name,
		Path: os.Args[0],
		Args: []string{"-test.run=^$"},
		Env:  append(append(os.Environ(), "LAUNCH_TEST_HELPER="+h), env...),
	}
}

func helper(name string) int {
	switch name {
	case "serve-fd3":
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
		for {
			c, err := l.Accept()
			if err != nil {
				return 0
			}
			fmt.Fprintf(c, "pid=%d fds=%d names=%s instance=%s\n", os.Getpid(), n, os.Getenv("LISTEN_FDNAMES"), os.Getenv("LAUNCH_INSTANCE"))
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
		time.Sleep(time.Minute)
		return 0
	case "with-child":
		// Starts a child in its own process group (Setpgid false: same
		// group), prints its pid, then waits or exits.
		p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^$"}, &os.ProcAttr{
			Env:   append(os.Environ(), "LAUNCH_TEST_HELPER=sleep"),
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
