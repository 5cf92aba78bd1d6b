package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// launchHome is the directory of the control sockets (design §6):
// $LAUNCH_HOME, else $XDG_RUNTIME_DIR/launch, else /run/launch for root
// (system services have no XDG_RUNTIME_DIR), else ~/.launch.
func launchHome() (string, error) {
	if d := os.Getenv("LAUNCH_HOME"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "launch"), nil
	}
	if os.Geteuid() == 0 {
		return "/run/launch", nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("control directory: set LAUNCH_HOME: %w", err)
	}
	return filepath.Join(h, ".launch"), nil
}

// ensureHome creates the control directory (0700) and refuses one that
// another user owns or others may write to: whoever can write there can
// put a socket of theirs where our clients will talk to it.
func ensureHome(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control directory %s: %w", dir, err)
	}
	return checkHome(dir)
}

func checkHome(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("control directory %s: not a directory", dir)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if uid := os.Geteuid(); int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("control directory %s belongs to uid %d, not to you (uid %d); set LAUNCH_HOME to a directory of yours", dir, st.Uid, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("control directory %s is writable by others (mode %04o); run `chmod 700 %s`", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// validName checks a master's name: it names files in the control
// directory, so it may not hold a slash or start with a dot.
func validName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 100 {
		return fmt.Errorf("--name %q: use letters, digits, '.', '_' and '-' (at most 100), starting with a letter or digit", name)
	}
	return nil
}

// masterLock is the flock a running master holds on NAME.lock in the
// control directory, so a second master with the same name is refused
// while a dead master's socket can be replaced. The lock file is never
// unlinked: unlinking would let two masters lock two different files.
type masterLock struct{ f *os.File }

// lockMaster takes NAME.lock, or says which master holds it.
func lockMaster(dir, name string) (*masterLock, error) {
	path := filepath.Join(dir, name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			return nil, fmt.Errorf("another master named %q is running (pid %s, socket %s); stop it, or give this one another --name",
				name, pid, filepath.Join(dir, name+".sock"))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &masterLock{f: f}, nil
}

func (l *masterLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}

// masterSockets lists the control sockets in dir by master name.
func masterSockets(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".sock"); ok && e.Type()&fs.ModeSocket != 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}
