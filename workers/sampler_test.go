package workers

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// startHelper starts helper h as worker name and kills it at the end.
func startHelper(t testing.TB, name, h string, env ...string) *Process {
	t.Helper()
	s := spawner(t)
	p, err := s.Start(helperSpec(name, h, env...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.Done()
	})
	return p
}

// sampleUntil samples pid until ok accepts its Usage or d passes.
func sampleUntil(t *testing.T, s *Sampler, pid int, d time.Duration, ok func(Usage) bool) Usage {
	t.Helper()
	var u Usage
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		u = s.Sample([]int{pid})[pid]
		if ok(u) {
			break
		}
	}
	return u
}

func TestSamplerMemory(t *testing.T) {
	p := startHelper(t, "m.0", "alloc", "ALLOC_MB=50")
	s := NewSampler()
	u := sampleUntil(t, s, p.PID, 15*time.Second, func(u Usage) bool { return u.Memory >= 50<<20 })
	if u.Memory < 50<<20 || u.MemoryKind != MemoryPSS || u.Procs != 1 || u.PID != p.PID {
		t.Errorf("usage %+v: want ≥ 50 MB of pss in 1 process", u)
	}
}

func TestSamplerCPU(t *testing.T) {
	p := startHelper(t, "c.0", "busy")
	s := NewSampler()
	if u := s.Sample([]int{p.PID})[p.PID]; u.CPUPercent != 0 {
		t.Errorf("first sample: CPUPercent %.1f, want 0 (no previous sample)", u.CPUPercent)
	}
	// Past start-up (exec, the Go runtime), then a second of spinning
	// between two samples. The machine may be shared and busy: up to five
	// one-second windows, one of which must show more than half a CPU.
	sampleUntil(t, s, p.PID, 10*time.Second, func(u Usage) bool { return u.CPUTime >= 100*time.Millisecond })
	var seen []string
	for range 5 {
		time.Sleep(time.Second)
		u := s.Sample([]int{p.PID})[p.PID]
		if u.CPUPercent > 50 {
			return
		}
		seen = append(seen, fmt.Sprintf("%.0f%%", u.CPUPercent))
	}
	t.Errorf("busy worker: CPUPercent %v in five windows, want > 50 in one", seen)
}

func TestSamplerGroupWithChild(t *testing.T) {
	p := startHelper(t, "g.0", "with-child")
	other := startHelper(t, "g.1", "sleep")
	s := NewSampler()
	u := sampleUntil(t, s, p.PID, 15*time.Second, func(u Usage) bool { return u.Procs == 2 })
	if u.Procs != 2 {
		t.Errorf("worker with a child: %+v, want Procs 2", u)
	}
	got := s.Sample([]int{p.PID, other.PID, 1 << 30})
	if len(got) != 2 || got[other.PID].Procs != 1 {
		t.Errorf("Sample of two workers and a dead pid: %+v", got)
	}
}

// fakeProc writes a /proc tree: each entry is pid → (ppid, pgrp, pss kB
// or -1 for an unreadable smaps_rollup).
func fakeProc(t *testing.T, procs map[int][3]int) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, fmt.Sprint(pid))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// utime 100 stime 50 cutime 10 cstime 0 (ticks), rss 10 pages;
		// the name has a space and a parenthesis.
		stat := fmt.Sprintf("%d (a b) c) S %d %d 1 0 -1 4194560 1 0 0 0 100 50 10 0 20 0 1 0 5 1000000 10 18446744073709551615\n", pid, p[0], p[1])
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if p[2] >= 0 {
			rollup := fmt.Sprintf("55d0-7ffc ---p 00000000 00:00 0  [rollup]\nRss:                 400 kB\nPss:                 %d kB\nPss_Dirty:            12 kB\n", p[2])
			if err := os.WriteFile(filepath.Join(d, "smaps_rollup"), []byte(rollup), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "self"), nil, 0o644)
	return dir
}

func TestSamplerMembership(t *testing.T) {
	page := int64(os.Getpagesize())
	procs := map[int][3]int{
		1:   {0, 1, 1},
		50:  {1, 50, 1},     // the master
		100: {50, 100, 200}, // worker A
		101: {100, 100, 20}, // A's child in its group
		102: {101, 102, 30}, // A's grandchild in a group of its own (setsid)
		103: {50, 100, 5},   // in A's group, re-parented to the master
		200: {50, 200, 300}, // worker B
		201: {200, 200, -1}, // B's child: PSS unreadable
		300: {1, 300, 7},    // unrelated
	}
	s := NewSampler()
	s.proc = fakeProc(t, procs)
	got := s.Sample([]int{100, 200, 400})
	cases := []struct {
		pid   int
		procs int
		mem   int64
		kind  string
	}{
		{100, 4, (200 + 20 + 30 + 5) << 10, MemoryPSS},
		{200, 2, 2 * 10 * page, MemoryRSS},
	}
	for _, c := range cases {
		u := got[c.pid]
		if u.Procs != c.procs || u.Memory != c.mem || u.MemoryKind != c.kind || u.CPUTime != time.Duration(c.procs)*1600*time.Millisecond {
			t.Errorf("worker %d: %+v, want %d procs, %d bytes of %s, %s CPU", c.pid, u, c.procs, c.mem, c.kind, time.Duration(c.procs)*1600*time.Millisecond)
		}
	}
	if _, ok := got[400]; ok || len(got) != 2 {
		t.Errorf("Sample returned %d workers (%v), want 100 and 200 only", len(got), got)
	}
}

func TestParseStat(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
		ppid     int
	}{
		{"plain", "7 (sleep) S 3 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 100 9", true, 3},
		{"name with ') '", "7 (x) S 9 (y) R 4 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 100 9 0 0", true, 4},
		{"truncated", "7 (sleep) S 3 7", false, 0},
		{"no name", "garbage", false, 0},
		{"not a number", "7 (a) S x 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 100 9", false, 0},
	}
	for _, c := range cases {
		st, ok := parseStat([]byte(c.in))
		if ok != c.ok || st.ppid != c.ppid || (ok && (st.cpu != 100*time.Millisecond || st.rss != 9)) {
			t.Errorf("%s: parseStat = %+v, %v; want ok %v, ppid %d, 100ms, 9 pages", c.name, st, ok, c.ok, c.ppid)
		}
	}
}

// BenchmarkSample samples 200 sleeping workers (real processes, each its
// own group leader), the figure the control plane pays every second:
// ns/op ÷ 10⁷ is the percent of one CPU at one sample per second.
//
//	go test -run '^$' -bench Sample -benchtime 50x ./workers/
func BenchmarkSample(b *testing.B) {
	pids := make([]int, 200)
	for i := range pids {
		p, err := spawner(b).Start(Spec{Name: fmt.Sprintf("b.%d", i), Path: "/bin/sleep", Args: []string{"60"}})
		if err != nil {
			b.Fatal(err)
		}
		pids[i] = p.PID
		b.Cleanup(func() {
			p.Signal(syscall.SIGKILL)
			<-p.Done()
		})
	}
	b.Run("proc", func(b *testing.B) {
		s := NewSampler()
		got := s.Sample(pids)
		if len(got) != len(pids) {
			b.Fatalf("sampled %d of %d workers", len(got), len(pids))
		}
		b.ResetTimer()
		for range b.N {
			s.Sample(pids)
		}
	})
	b.Run("gopsutil", func(b *testing.B) {
		if n := len(gopsutilSample(pids)); n != len(pids) {
			b.Fatalf("sampled %d of %d workers", n, len(pids))
		}
		b.ResetTimer()
		for range b.N {
			gopsutilSample(pids)
		}
	})
}

// gopsutilSample is Sample done through gopsutil, for BenchmarkSample's
// comparison: gopsutil has no process-group query, so members are found
// by parent links (Ppid) from every process, then Times and MemoryInfo
// (RSS; its PSS means reading all of smaps) of each member.
func gopsutilSample(leaders []int) map[int]Usage {
	procs, err := process.Processes()
	if err != nil {
		return nil
	}
	isLeader := map[int32]bool{}
	for _, l := range leaders {
		isLeader[int32(l)] = true
	}
	parent := map[int32]int32{}
	for _, p := range procs {
		if pp, err := p.Ppid(); err == nil {
			parent[p.Pid] = pp
		}
	}
	out := map[int]Usage{}
	for _, p := range procs {
		l := p.Pid
		for depth := 0; l > 1 && !isLeader[l] && depth < 64; depth++ {
			l = parent[l]
		}
		if !isLeader[l] {
			continue
		}
		times, err := p.Times()
		if err != nil {
			continue
		}
		mem, err := p.MemoryInfo()
		if err != nil {
			continue
		}
		u := out[int(l)]
		u.PID, u.Procs, u.MemoryKind = int(l), u.Procs+1, MemoryRSS
		u.CPUTime += time.Duration((times.User + times.System) * float64(time.Second))
		u.Memory += int64(mem.RSS)
		out[int(l)] = u
	}
	return out
}

// TestSamplerPidReuse: a leader pid that now belongs to a new process
// (another start time) starts over instead of inheriting the old CPU time.
func TestSamplerPidReuse(t *testing.T) {
	s := NewSampler()
	s.proc = fakeProc(t, map[int][3]int{100: {1, 100, 10}})
	setStat := func(utime, start int) {
		stat := fmt.Sprintf("100 (w) S 1 100 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 %d 1000 10\n", utime, start)
		if err := os.WriteFile(filepath.Join(s.proc, "100", "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name         string
		utime, start int
		busy         bool
	}{
		{"first sample", 100, 5, false},
		{"same process, 1 s more CPU", 200, 5, true},
		{"pid reused by a new process", 300, 6, false},
		{"the new process, 1 s more CPU", 400, 6, true},
	}
	for _, c := range cases {
		setStat(c.utime, c.start)
		time.Sleep(10 * time.Millisecond)
		u := s.Sample([]int{100})[100]
		if (u.CPUPercent > 0) != c.busy {
			t.Errorf("%s: CPUPercent %.0f, want > 0: %v", c.name, u.CPUPercent, c.busy)
		}
	}
}
