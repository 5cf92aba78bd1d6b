package workers

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileLogFiles(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name               string
		out, err, combined string // relative to a fresh directory
		wantOut, wantErr   string
		wantCombined       string
		prefix             bool
	}{
		{
			name: "three files, new directories", out: "a/b/out.log", err: "a/err.log", combined: "c/all.log", prefix: true,
			wantOut: "web.0 | o1\nweb.1 | o2\n", wantErr: "web.0 | e1\n", wantCombined: "web.0 | o1\nweb.0 | e1\nweb.1 | o2\n",
		},
		{
			name: "out and err the same file", out: "x.log", err: "x.log",
			wantOut: "o1\ne1\no2\n",
		},
		{
			name: "combined equals out", out: "x.log", combined: "x.log", err: "e.log",
			wantOut: "o1\ne1\no2\n", wantErr: "e1\n",
		},
		{
			name: "only stderr", err: "e.log", wantErr: "e1\n",
		},
	}
	for i, c := range cases {
		base := filepath.Join(dir, fmt.Sprint(i))
		path := func(p string) string {
			if p == "" {
				return ""
			}
			return filepath.Join(base, p)
		}
		f, err := NewFileLog(FileLogOptions{Out: path(c.out), Err: path(c.err), Combined: path(c.combined), Prefix: c.prefix})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f.Write("web.0", false, []byte("o1"))
		f.Write("web.0", true, []byte("e1"))
		f.Write("web.1", false, []byte("o2"))
		if err := f.Close(); err != nil {
			t.Errorf("%s: Close: %v", c.name, err)
		}
		f.Write("web.0", false, []byte("after close")) // ignored, no panic
		for _, w := range []struct{ path, want string }{{c.out, c.wantOut}, {c.err, c.wantErr}, {c.combined, c.wantCombined}} {
			if w.path == "" || w.want == "" {
				continue
			}
			if got := readFile(t, path(w.path)); got != w.want {
				t.Errorf("%s: %s holds %q, want %q", c.name, w.path, got, w.want)
			}
		}
		if fi, err := os.Stat(path(c.err)); err == nil && fi.Mode().Perm()&0o600 != 0o600 {
			t.Errorf("%s: mode %v", c.name, fi.Mode())
		}
	}
}

func TestFileLogDatePrefixAndAppend(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.log")
	if err := os.WriteFile(out, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const layout = "2006-01-02T15:04:05.000Z07:00"
	f, err := NewFileLog(FileLogOptions{Out: out, DateLayout: layout, MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f.Write("web.0", false, []byte("hello"))
	f.Write("web.0", false, []byte(strings.Repeat("z", maxLine+10))) // split in two
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(readFile(t, out), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "before" {
		t.Fatalf("file has %d lines, first %q; want 4, the old line first", len(lines), lines[0])
	}
	stamp, text, ok := strings.Cut(lines[1], ": ")
	if _, err := time.Parse(layout, stamp); err != nil || !ok || text != "hello" {
		t.Errorf("line %q: want %q then \": hello\" (%v)", lines[1], layout, err)
	}
	if !strings.HasSuffix(lines[2], ": "+strings.Repeat("z", maxLine)) || !strings.HasSuffix(lines[3], ": zzzzzzzzzz") {
		t.Errorf("a long line was not split at %d bytes", maxLine)
	}
}

func TestFileLogRotation(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.log")
	f, err := NewFileLog(FileLogOptions{Out: out, MaxSize: 1, MaxFiles: 2}) // 1 byte rounds up to 1 MB
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("r", 1023)) // 1 KiB with the newline
	for i := range 4 * 1024 {
		f.Write("web.0", false, line)
		for i%512 == 0 && f.qBytes.Load() > 0 {
			time.Sleep(time.Millisecond) // keep within the queue: this test is not about drops
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Dropped() != 0 {
		t.Fatalf("dropped %d lines", f.Dropped())
	}
	// lumberjack deletes old files in the background after a rotation.
	var names []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ents, _ := os.ReadDir(dir)
		names = names[:0]
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if len(names) <= 3 || time.Now().After(deadline) {
			break
		}
	}
	backup := regexp.MustCompile(`^out-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log$`)
	var backups int
	for _, n := range names {
		switch {
		case n == "out.log":
		case backup.MatchString(n):
			backups++
			if fi, _ := os.Stat(filepath.Join(dir, n)); fi.Size() > 1<<20 {
				t.Errorf("%s is %d bytes, over the 1 MB limit", n, fi.Size())
			}
		default:
			t.Errorf("unexpected file %s", n)
		}
	}
	if backups != 2 {
		t.Errorf("files %q: want out.log and 2 rotated files (4 MB written, 1 MB each, MaxFiles 2)", names)
	}
}

func TestFileLogOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts FileLogOptions
		path string
	}{
		{"parent is a file", FileLogOptions{Out: filepath.Join(notDir, "out.log")}, filepath.Join(notDir, "out.log")},
		{"path is a directory", FileLogOptions{Out: filepath.Join(dir, "ok.log"), Err: dir}, dir},
		{"rotated, parent is a file", FileLogOptions{Combined: filepath.Join(notDir, "x", "all.log"), MaxSize: 1 << 20}, filepath.Join(notDir, "x")},
	}
	for _, c := range cases {
		f, err := NewFileLog(c.opts)
		if err == nil {
			f.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %q does not name %s", c.name, err, c.path)
		}
	}
}

// TestFileLogDiskStall writes to a FIFO nobody reads, as a stand-in for a
// stalled disk: Write must stay fast, and the lines it dropped are counted
// and marked once the reader comes.
func TestFileLogDiskStall(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := NewFileLog(FileLogOptions{Out: fifo, MaxSize: 1 << 20}) // a FIFO is never rotated
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		f.Write("web.0", false, fmt.Appendf(nil, "%d %s", i, strings.Repeat("s", 100)))
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 200*time.Millisecond {
		t.Errorf("a Write to a stalled file took %s", slowest)
	}
	if f.Dropped() == 0 {
		t.Fatal("nothing dropped though nobody reads the FIFO")
	}
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	text := <-got
	markers := regexp.MustCompile(`\[launch: (\d+) lines \([^)]+\) dropped\]\n`).FindAllStringSubmatch(text, -1)
	var marked uint64
	for _, m := range markers {
		var k uint64
		fmt.Sscan(m[1], &k)
		marked += k
	}
	if marked != f.Dropped() {
		t.Errorf("markers %q say %d lines, want %d", markers, marked, f.Dropped())
	}
	if lines := uint64(strings.Count(text, "\n") - len(markers)); lines+f.Dropped() != n {
		t.Errorf("%d lines written and %d dropped, want %d in all", lines, f.Dropped(), n)
	}
}

// TestFileLogDevNull: PM2 users write out_file: /dev/null; a device is
// written as it is and never rotated (renamed) away.
func TestFileLogDevNull(t *testing.T) {
	f, err := NewFileLog(FileLogOptions{Out: os.DevNull, MaxSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("n", 1023))
	for range 2048 { // 2 MB, over the 1 MB limit
		f.Write("web.0", false, line)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s is no longer a device: %v %v", os.DevNull, fi.Mode(), err)
	}
}
