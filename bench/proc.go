package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// parentPID reads a process's parent from /proc/PID/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so split after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.Atoi(f[1])
}

// IsDescendant reports whether pid is a live descendant of root (and not
// root itself), following parent links in /proc for at most 64 levels.
// A process that is gone, or whose parent chain reaches init first, is
// not.
func IsDescendant(pid, root int) bool {
	if pid <= 1 || pid == root {
		return false
	}
	p := pid
	for range 64 {
		pp, err := parentPID(p)
		if err != nil || pp <= 1 {
			return false
		}
		if pp == root {
			return true
		}
		p = pp
	}
	return false
}
