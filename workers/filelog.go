package workers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// FileLogOptions says where one app's output goes on disk: PM2's out_file,
// error_file and log_file. An empty path writes no such file.
type FileLogOptions struct {
	// Out receives stdout lines (PM2's out_file).
	Out string
	// Err receives stderr lines (PM2's error_file); it may equal Out.
	Err string
	// Combined receives both (PM2's log_file); it may equal Out or Err, and
	// then gets each line once.
	Combined string
	// DateLayout, when set, prefixes each line with the time it was written
	// in this Go time layout and ": ", as PM2 does with log_date_format
	// (the config layer converts PM2's moment.js format).
	DateLayout string
	// Prefix, when set, writes the worker's name and " | " before each line
	// ("web.0 | ..."); PM2 writes none, so its files of a cluster-mode app
	// do not say which instance wrote a line.
	Prefix bool
	// MaxSize rotates a file once it would grow past this many bytes,
	// rounded up to whole megabytes (lumberjack's unit). Zero or negative:
	// never rotate, PM2's default.
	MaxSize int64
	// MaxFiles is how many rotated files to keep beside the current one;
	// older ones are deleted (after each rotation, in the background).
	// Zero keeps them all. Used only with MaxSize.
	MaxFiles int
}

// File log limits: the queue between Write and the disk, and the longest
// line written in one piece (a longer one is split, as on the terminal).
const (
	fileQueueLines = 4096
	fileQueueBytes = 4 << 20
	fileBatch      = 64 << 10
)

// FileLog writes one app's output to files, with rotation by size
// (lumberjack). Write never waits for the disk: lines go through a bounded
// queue to one writer goroutine, and when the disk stalls they are dropped,
// counted, and a marker line ("[launch: 12 lines (1.2 KB) dropped]") is
// written once the writer catches up.
//
// Existing regular files are appended to; directories are created. A path
// that is not a regular file (/dev/null, a FIFO, /dev/stderr) is written
// as it is and never rotated.
//
// lumberjack starts one goroutine per rotating file that it never stops
// (v2.2.1: Logger.Close leaves its "mill" goroutine running). FileLog keeps
// one lumberjack.Logger per path and settings for the life of the process
// and reuses it, so these goroutines are bounded by the number of distinct
// files, and two FileLogs on one path (two apps, or an old and a new one
// during a reload) share it instead of rotating the file under each other.
// Leak checks must ignore them:
// goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun").
type FileLog struct {
	opts   FileLogOptions
	out    []*fileSink // stdout lines go to each
	err    []*fileSink // stderr lines go to each
	sinks  []*fileSink // every distinct file, for Close
	q      chan fileEntry
	qBytes atomic.Int64 // bytes queued in q

	closeMu sync.RWMutex
	closed  bool // guarded by closeMu; Write after Close is ignored

	droppedLines [2]atomic.Int64 // by stream: 0 stdout, 1 stderr
	droppedBytes [2]atomic.Int64
	totalDropped atomic.Uint64

	done     chan struct{}
	writeErr error // set by the writer goroutine; read after done
}

type fileEntry struct {
	stderr bool
	text   []byte // the whole line as written, newline included
}

// NewFileLog opens the files named in opts (creating them and their
// directories) and starts the writer goroutine, which Close ends. An error
// names the file that could not be opened; nothing is left open then.
func NewFileLog(opts FileLogOptions) (*FileLog, error) {
	f := &FileLog{opts: opts, q: make(chan fileEntry, fileQueueLines), done: make(chan struct{})}
	byPath := map[string]*fileSink{}
	open := func(path string) (*fileSink, error) {
		if path == "" {
			return nil, nil
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("log file %s: %w", path, err)
		}
		if s := byPath[abs]; s != nil {
			return s, nil
		}
		s, err := openSink(abs, opts)
		if err != nil {
			return nil, err
		}
		byPath[abs] = s
		f.sinks = append(f.sinks, s)
		return s, nil
	}
	for _, p := range []struct {
		path   string
		stdout bool
		stderr bool
	}{{opts.Out, true, false}, {opts.Err, false, true}, {opts.Combined, true, true}} {
		s, err := open(p.path)
		if err != nil {
			for _, s := range f.sinks {
				s.close()
			}
			return nil, err
		}
		if s == nil {
			continue
		}
		if p.stdout && !contains(f.out, s) {
			f.out = append(f.out, s)
		}
		if p.stderr && !contains(f.err, s) {
			f.err = append(f.err, s)
		}
	}
	go f.write()
	return f, nil
}

func contains(ss []*fileSink, s *fileSink) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Write queues one line of worker's output (without its newline). It
// never waits for the disk: when the queue is full the line is dropped and
// counted. Lines longer than 16 KiB are split. Safe for concurrent use;
// line is copied. After Close it does nothing. Its signature fits Log.Tee.
func (f *FileLog) Write(worker string, stderr bool, line []byte) {
	if f == nil || (stderr && len(f.err) == 0) || (!stderr && len(f.out) == 0) {
		return
	}
	var stamp string
	if f.opts.DateLayout != "" {
		stamp = time.Now().Format(f.opts.DateLayout) + ": "
	}
	f.closeMu.RLock()
	defer f.closeMu.RUnlock()
	if f.closed {
		return
	}
	for {
		chunk := line[:min(len(line), maxLine)]
		line = line[len(chunk):]
		f.enqueue(worker, stderr, stamp, chunk)
		if len(line) == 0 {
			return
		}
	}
}

// enqueue formats and queues one line, or counts it as dropped.
func (f *FileLog) enqueue(worker string, stderr bool, stamp string, line []byte) {
	n := len(stamp) + len(line) + 1
	if f.opts.Prefix {
		n += len(worker) + 3
	}
	stream := 0
	if stderr {
		stream = 1
	}
	if f.qBytes.Add(int64(n)) > fileQueueBytes {
		f.qBytes.Add(-int64(n))
		f.drop(stream, n)
		return
	}
	b := make([]byte, 0, n)
	b = append(b, stamp...)
	if f.opts.Prefix {
		b = append(append(b, worker...), " | "...)
	}
	b = append(append(b, line...), '\n')
	select {
	case f.q <- fileEntry{stderr: stderr, text: b}:
	default:
		f.qBytes.Add(-int64(n))
		f.drop(stream, n)
	}
}

func (f *FileLog) drop(stream, n int) {
	f.droppedLines[stream].Add(1)
	f.droppedBytes[stream].Add(int64(n))
	f.totalDropped.Add(1)
}

// Dropped returns how many lines were dropped because the disk was too
// slow, since NewFileLog.
func (f *FileLog) Dropped() uint64 { return f.totalDropped.Load() }

// Close writes what is queued, stops the writer goroutine and closes the
// files. It returns the first error writing or closing a file (a full
// disk, say: lines that failed to write are lost, not retried). It waits
// for the disk; a second call returns nil at once.
func (f *FileLog) Close() error {
	f.closeMu.Lock()
	if f.closed {
		f.closeMu.Unlock()
		return nil
	}
	f.closed = true
	close(f.q)
	f.closeMu.Unlock()
	<-f.done
	errs := []error{f.writeErr}
	for _, s := range f.sinks {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// write is the FileLog's one writer goroutine: it batches queued lines
// per file and ends when the queue is closed.
func (f *FileLog) write() {
	defer close(f.done)
	pending := map[*fileSink][]byte{}
	flush := func() {
		for s, b := range pending {
			if len(b) == 0 {
				continue
			}
			if _, err := s.w.Write(b); err != nil && f.writeErr == nil {
				f.writeErr = fmt.Errorf("write log file %s: %w", s.path, err)
			}
			pending[s] = b[:0]
		}
	}
	add := func(stderr bool, text []byte) {
		to := f.out
		if stderr {
			to = f.err
		}
		for _, s := range to {
			if len(pending[s])+len(text) > fileBatch {
				flush()
			}
			pending[s] = append(pending[s], text...)
		}
	}
	marker := func(stream int) {
		n := f.droppedLines[stream].Swap(0)
		if n == 0 {
			return
		}
		b := f.droppedBytes[stream].Swap(0)
		var stamp string
		if f.opts.DateLayout != "" {
			stamp = time.Now().Format(f.opts.DateLayout) + ": "
		}
		add(stream == 1, fmt.Appendf(nil, "%s[launch: %d lines (%s) dropped]\n", stamp, n, humanBytes(b)))
	}
	for e := range f.q {
		f.qBytes.Add(-int64(len(e.text)))
		add(e.stderr, e.text)
		if len(f.q) == 0 {
			marker(0)
			marker(1)
			flush()
		}
	}
	marker(0)
	marker(1)
	flush()
}

// fileSink is one open file: a shared rotating lumberjack.Logger, or a
// plain file for what must not be rotated.
type fileSink struct {
	path string
	w    io.Writer
	// close releases the file: the plain file is closed; a rotating one is
	// closed when its last FileLog lets go.
	close func() error
}

// rotators holds every lumberjack.Logger made, for the life of the
// process (see FileLog on why).
var rotators struct {
	mu sync.Mutex
	m  map[rotatorKey]*rotator
}

type rotatorKey struct {
	path     string
	maxMB    int
	maxFiles int
}

type rotator struct {
	lj    *lumberjack.Logger
	users int // guarded by rotators.mu
}

// openSink opens path (absolute) for appending.
func openSink(path string, opts FileLogOptions) (*fileSink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	// Open (and create) the file here even when lumberjack will write it:
	// a path that cannot be written fails now, with its name, and a new
	// file gets mode 0644 (PM2's, less the umask), which lumberjack then
	// carries over to the files it rotates in.
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("log file: %w", err)
	}
	if opts.MaxSize <= 0 || !fi.Mode().IsRegular() {
		return &fileSink{path: path, w: file, close: file.Close}, nil
	}
	file.Close()

	key := rotatorKey{path: path, maxMB: int((opts.MaxSize + 1<<20 - 1) >> 20), maxFiles: opts.MaxFiles}
	rotators.mu.Lock()
	defer rotators.mu.Unlock()
	if rotators.m == nil {
		rotators.m = map[rotatorKey]*rotator{}
	}
	rot := rotators.m[key]
	if rot == nil {
		rot = &rotator{lj: &lumberjack.Logger{
			Filename:   path,
			MaxSize:    key.maxMB,
			MaxBackups: key.maxFiles,
			LocalTime:  true,
		}}
		rotators.m[key] = rot
	}
	rot.users++
	var once sync.Once
	release := func() error {
		var err error
		once.Do(func() {
			rotators.mu.Lock()
			defer rotators.mu.Unlock()
			if rot.users--; rot.users == 0 {
				if cerr := rot.lj.Close(); cerr != nil {
					err = fmt.Errorf("close log file %s: %w", path, cerr)
				}
			}
		})
		return err
	}
	return &fileSink{path: path, w: rot.lj, close: release}, nil
}
