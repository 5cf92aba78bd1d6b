package workers

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Trampoline is the first thing a worker runs: `launch __launch-exec
// [--ppid=N] [--nice=N] [--cred=UID:GID:G1,G2] -- PATH ARGS...`. The master forks it
// with the worker's fds, directory and environment in place; it
//
//   - drops privileges when --cred is given (here rather than in the fork,
//     so the launch binary need not be executable by the target user), then
//     re-arms Pdeathsig, which the kernel clears on a credential change, and
//     dies at once if the master is already gone;
//   - sets its thread's nice value to --nice, which the app inherits;
//   - sets LISTEN_PID to its own pid when LISTEN_FDS is set: exec keeps the
//     pid, so the app sees LISTEN_PID == getpid() as sd_listen_fds requires;
//   - execs PATH.
//
// It never returns. Failures exit 127 (not found) or 126 (not executable)
// like a shell, with one line on stderr that the master shows.
func Trampoline(args []string) {
	// Pdeathsig is per thread: setuid clears it on every thread, and the
	// prctl below re-arms only the calling one, so the re-arm and the
	// execve must happen on the same thread.
	runtime.LockOSThread()
	ppid, nice := 0, -100
	var cred string
	for len(args) > 0 && args[0] != "--" {
		a := args[0]
		args = args[1:]
		switch {
		case strings.HasPrefix(a, "--ppid="):
			ppid, _ = strconv.Atoi(strings.TrimPrefix(a, "--ppid="))
		case strings.HasPrefix(a, "--nice="):
			nice, _ = strconv.Atoi(strings.TrimPrefix(a, "--nice="))
		case strings.HasPrefix(a, "--cred="):
			cred = strings.TrimPrefix(a, "--cred=")
		default:
			die(2, "launch trampoline: unknown argument %q", a)
		}
	}
	if len(args) < 2 {
		die(2, "launch trampoline: usage: %s [--cred=U:G:GROUPS] -- PATH [ARGS...]", TrampolineArg)
	}
	path, argv := args[1], args[1:]
	if cred != "" {
		if err := dropPrivileges(cred); err != nil {
			die(126, "launch: %v", err)
		}
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			die(126, "launch: re-arm parent-death signal: %v", err)
		}
		if ppid != 0 && os.Getppid() != ppid {
			os.Exit(1) // the master died before we armed it
		}
	}
	if os.Getenv("LISTEN_FDS") != "" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	if nice != -100 {
		// This thread's priority, which the app's threads inherit; a
		// failure only means the worker starts at the usual priority.
		_ = unix.Setpriority(unix.PRIO_PROCESS, 0, nice)
	}
	err := syscall.Exec(path, argv, os.Environ())
	code := 126
	if errors.Is(err, syscall.ENOENT) {
		code = 127
	}
	die(code, "launch: cannot execute %s: %v", path, err)
}

func dropPrivileges(cred string) error {
	parts := strings.SplitN(cred, ":", 3)
	if len(parts) != 3 {
		return fmt.Errorf("bad credential %q", cred)
	}
	uid, err1 := strconv.Atoi(parts[0])
	gid, err2 := strconv.Atoi(parts[1])
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("bad credential %q: %w", cred, err)
	}
	groups := []int{}
	if parts[2] != "" {
		for _, g := range strings.Split(parts[2], ",") {
			n, err := strconv.Atoi(g)
			if err != nil {
				return fmt.Errorf("bad group %q: %w", g, err)
			}
			groups = append(groups, n)
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}

func die(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}
