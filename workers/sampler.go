package workers

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Memory kinds reported in Usage.MemoryKind.
const (
	// MemoryPSS is the proportional set size (/proc/PID/smaps_rollup):
	// pages shared with other processes (after fork, or a shared library)
	// count as a share each, so the sum over processes is not inflated.
	MemoryPSS = "pss"
	// MemoryRSS is the resident set size (/proc/PID/stat), used when the
	// PSS of some process of the group cannot be read (another user's
	// process without ptrace rights, a kernel before 4.14). Shared pages
	// count in full in every process.
	MemoryRSS = "rss"
)

// Usage is the resource use of one worker: its process group and the
// descendants that left the group but are still children of a member.
type Usage struct {
	// PID is the worker's pid, the group leader.
	PID int
	// CPUPercent is the CPU used since the previous Sample that saw this
	// worker, in percent of one CPU (200 = two CPUs busy); 0 on the first.
	CPUPercent float64
	// CPUTime is user+system time of the live processes and of the
	// children they have reaped.
	CPUTime time.Duration
	// Memory is in bytes, of kind MemoryKind, summed over the processes.
	Memory int64
	// MemoryKind is MemoryPSS or MemoryRSS.
	MemoryKind string
	// Procs is how many live processes were counted.
	Procs int
	// At is when the sample was taken.
	At time.Time
}

// Sampler measures CPU and memory of worker process groups from /proc. It
// keeps each worker's previous CPU time to turn it into a percentage.
// Safe for concurrent use (calls are serialised). The zero value is not
// usable; call NewSampler.
//
// It reads /proc directly rather than through gopsutil: gopsutil has no
// process-group query, so finding a group's members means a Process per
// pid, and each of its Times/Ppid calls re-reads /proc/PID/stat and
// /proc/stat (boot time) and makes a getpriority call. One Sample reads
// /proc/PID/stat once for every process on the host and
// /proc/PID/smaps_rollup once per member; see BenchmarkSample for the cost
// of each way.
type Sampler struct {
	mu   sync.Mutex
	prev map[int]cpuMark // guarded by mu; by leader pid
	buf  []byte          // guarded by mu; read buffer
	// proc is the procfs mount (a field for tests).
	proc string
}

type cpuMark struct {
	cpu   time.Duration
	at    time.Time
	start int64 // the leader's start time: a reused pid is a new worker
}

// NewSampler makes a Sampler reading /proc.
func NewSampler() *Sampler {
	return &Sampler{prev: map[int]cpuMark{}, buf: make([]byte, 4096), proc: "/proc"}
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, sysconf's
// _SC_CLK_TCK): 100 on every architecture Linux and Go share.
const userHZ = 100

// procStat is what Sample needs from one /proc/PID/stat.
type procStat struct {
	pid, ppid, pgrp int
	cpu             time.Duration // utime+stime+cutime+cstime
	rss             int64         // bytes
	start           int64         // starttime, in ticks since boot
}

// Sample measures every worker in pids (process-group leaders). A worker
// whose group has no live process is left out of the result. Members are
// the processes of the leader's group plus any process whose parent is a
// member (a child that called setsid or setpgid); a grandchild re-parented
// to the master after its parent died is not counted.
//
// CPU time includes what members reaped from their children, so it does
// not fall when a child exits; a member that dies unreaped by the group
// (reaped by the master as subreaper) takes its time with it, and the
// percentage of that interval is clamped at 0.
func (s *Sampler) Sample(pids []int) map[int]Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	leaders := make(map[int]bool, len(pids))
	for _, p := range pids {
		leaders[p] = true
	}
	all := s.scan()

	// owner: pid → leader it counts for (0: none), by group first, then
	// by parent chain.
	byPid := make(map[int]*procStat, len(all))
	for i := range all {
		byPid[all[i].pid] = &all[i]
	}
	owner := make(map[int]int, len(pids)*2)
	var ownerOf func(pid, depth int) int
	ownerOf = func(pid, depth int) int {
		if o, ok := owner[pid]; ok {
			return o
		}
		st := byPid[pid]
		o := 0
		switch {
		case st == nil || depth > 64:
		case leaders[st.pgrp]:
			o = st.pgrp
		case st.ppid > 1:
			o = ownerOf(st.ppid, depth+1)
		}
		owner[pid] = o
		return o
	}

	out := make(map[int]Usage, len(pids))
	pss := map[int]bool{} // leader → every member's PSS read so far
	for i := range all {
		st := &all[i]
		l := ownerOf(st.pid, 0)
		if l == 0 {
			continue
		}
		u, seen := out[l]
		if !seen {
			u = Usage{PID: l, At: now, MemoryKind: MemoryPSS}
			pss[l] = true
		}
		u.Procs++
		u.CPUTime += st.cpu
		u.Memory += st.rss // replaced by the PSS sum below when every member has one
		out[l] = u
	}
	// PSS where every member's is readable; RSS otherwise.
	pssSum := map[int]int64{}
	for i := range all {
		st := &all[i]
		l := owner[st.pid]
		if l == 0 || !pss[l] {
			continue
		}
		if v, ok := s.readPSS(st.pid); ok {
			pssSum[l] += v
		} else {
			pss[l] = false
		}
	}
	for l := range s.prev {
		if _, ok := out[l]; !ok {
			delete(s.prev, l)
		}
	}
	for l, u := range out {
		if pss[l] {
			u.Memory = pssSum[l]
		} else {
			u.MemoryKind = MemoryRSS
		}
		var start int64
		if st := byPid[l]; st != nil {
			start = st.start
		}
		if p, ok := s.prev[l]; ok && p.start == start && now.After(p.at) && u.CPUTime > p.cpu {
			u.CPUPercent = 100 * float64(u.CPUTime-p.cpu) / float64(now.Sub(p.at))
		}
		s.prev[l] = cpuMark{cpu: u.CPUTime, at: now, start: start}
		out[l] = u
	}
	return out
}

// scan reads /proc/PID/stat of every process.
func (s *Sampler) scan() []procStat {
	d, err := os.Open(s.proc)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	out := make([]procStat, 0, len(names))
	page := int64(os.Getpagesize())
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		b, ok := s.read(s.proc + "/" + n + "/stat")
		if !ok {
			continue // gone
		}
		st, ok := parseStat(b)
		if !ok {
			continue
		}
		st.pid = pid
		st.rss *= page
		out = append(out, st)
	}
	return out
}

// read reads a small /proc file into s.buf (valid until the next read).
func (s *Sampler) read(path string) ([]byte, bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := unix.Read(fd, s.buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false
		}
		if m == 0 {
			return s.buf[:n], true
		}
		n += m
	}
}

// parseStat reads ppid, pgrp, CPU times and RSS (in pages) from the
// contents of /proc/PID/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (procStat, bool) {
	b = bytes.TrimRight(b, "\n")
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, false
	}
	b = b[i+2:]
	// Fields after the name, from 0: state ppid pgrp session tty_nr tpgid
	// flags minflt cminflt majflt cmajflt utime(11) stime cutime cstime
	// priority nice num_threads itrealvalue starttime vsize rss(21).
	var st procStat
	var ticks int64
	for f := 0; f <= 21 && len(b) > 0; f++ {
		j := bytes.IndexByte(b, ' ')
		if j < 0 {
			j = len(b)
		}
		field := b[:j]
		if j < len(b) {
			b = b[j+1:]
		} else {
			b = nil
		}
		switch f {
		case 1, 2, 11, 12, 13, 14, 19, 21:
			v, ok := atoi(field)
			if !ok {
				return procStat{}, false
			}
			switch f {
			case 1:
				st.ppid = int(v)
			case 2:
				st.pgrp = int(v)
			case 19:
				st.start = v
			case 21:
				st.rss = v
			default:
				ticks += v
			}
		}
		if f == 21 {
			st.cpu = time.Duration(ticks) * (time.Second / userHZ)
			return st, true
		}
	}
	return procStat{}, false
}

// atoi parses a decimal integer, possibly negative, without allocating.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

var pssKey = []byte("\nPss:")

// readPSS returns the PSS of pid in bytes from /proc/PID/smaps_rollup.
func (s *Sampler) readPSS(pid int) (int64, bool) {
	b, ok := s.read(s.proc + "/" + strconv.Itoa(pid) + "/smaps_rollup")
	if !ok {
		return 0, false
	}
	i := bytes.Index(b, pssKey)
	if i < 0 {
		return 0, false
	}
	b = bytes.TrimLeft(b[i+len(pssKey):], " ")
	if j := bytes.IndexByte(b, ' '); j >= 0 {
		b = b[:j]
	}
	kb, ok := atoi(b)
	return kb << 10, ok
}
