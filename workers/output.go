package workers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Line limits: a longer line is split; the queue to the terminal holds at
// most this many lines, after which lines are dropped (and counted) rather
// than blocking the reader, which would block the worker on a full pipe.
const (
	maxLine    = 16 << 10
	queueLines = 4096
)

// Log merges the output of every worker into one writer (the master's
// stdout), each line prefixed with "name.instance | ", coloured on a TTY
// like foreman and overmind. It never blocks a worker: each pipe is read as
// fast as the worker writes, and when the writer falls behind, lines are
// dropped and counted, and a marker line says how much was lost.
//
// A nil *Log discards output (pipes are still drained).
type Log struct {
	w     io.Writer
	color bool
	q     chan logLine
	done  chan struct{}
	wg    sync.WaitGroup // followers

	// Tee, if set before the first Printf or follow, also receives every
	// line, dropped from the terminal or not (for `launch logs` and log
	// files): worker lines under the worker's name ("web.0", no prefix),
	// split at 16 KiB like the terminal's; the master's own Printf lines
	// under MasterName ("launch"), whole. It runs on the reading goroutine
	// and must not block. It may keep line but not modify it. Ring.Add
	// fits.
	Tee func(worker string, stderr bool, line []byte)

	mu     sync.Mutex
	colors map[string]int
	// master holds the master's own lines when q is full; the writer
	// drains it first. Bounded: past masterBacklog lines are counted.
	master        []string
	masterDropped int
	hasMaster     atomic.Bool
}

// masterBacklog bounds the master's own lines waiting for a stuck writer.
const masterBacklog = 1024

type logLine struct {
	src  *source
	text []byte
	mark bool // a drop marker request: print the source's dropped count
}

type source struct {
	name         string
	stderr       bool
	droppedLines atomic.Int64
	droppedBytes atomic.Int64
}

// NewLog writes to w; color adds ANSI colours to the prefixes.
func NewLog(w io.Writer, color bool) *Log {
	l := &Log{w: w, color: color, q: make(chan logLine, queueLines), done: make(chan struct{}), colors: map[string]int{}}
	go l.write()
	return l
}

// Printf writes a master line ("launch: ...") in order with worker output.
// It never blocks, so a stalled stdout (a paused pager, a full pipe) cannot
// freeze the master: when the queue is full the line waits in a bounded
// backlog that the writer drains first; past that, lines are counted and
// the count is shown.
func (l *Log) Printf(format string, args ...any) {
	if l == nil {
		return
	}
	text := fmt.Appendf(nil, format, args...)
	if l.Tee != nil {
		l.Tee(MasterName, false, text)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.master) == 0 {
		select {
		case l.q <- logLine{text: text}:
			return
		default:
		}
	}
	if len(l.master) >= masterBacklog {
		l.masterDropped++
		return
	}
	l.master = append(l.master, string(text))
	l.hasMaster.Store(true)
}

// flushMaster writes the master's backlog (writer goroutine only).
func (l *Log) flushMaster(bw *bufio.Writer) {
	if !l.hasMaster.Load() {
		return
	}
	l.mu.Lock()
	lines, dropped := l.master, l.masterDropped
	l.master, l.masterDropped = nil, 0
	l.hasMaster.Store(false)
	l.mu.Unlock()
	for _, s := range lines {
		bw.WriteString(s)
		bw.WriteByte('\n')
	}
	if dropped > 0 {
		fmt.Fprintf(bw, "launch: [%d log lines of the master dropped: output was not being read]\n", dropped)
	}
}

// Close waits for every followed pipe to reach EOF, writes what is queued
// and stops the writer. Printf and follow must not be called after Close.
func (l *Log) Close() {
	if l == nil {
		return
	}
	l.wg.Wait()
	close(l.q)
	<-l.done
}

// CloseTimeout is Close that gives up waiting for pipes after d (a
// re-parented grandchild may hold a worker's pipe open forever).
func (l *Log) CloseTimeout(d time.Duration) {
	if l == nil {
		return
	}
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		close(l.q)
		<-l.done
	case <-time.After(d):
	}
}

var palette = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

func (l *Log) prefix(name string) string {
	if !l.color {
		return name + " | "
	}
	l.mu.Lock()
	c, ok := l.colors[name]
	if !ok {
		c = len(l.colors) % len(palette)
		l.colors[name] = c
	}
	l.mu.Unlock()
	return "\x1b[" + palette[c] + "m" + name + " |\x1b[0m "
}

// write is the Log's one writer goroutine; it ends when q is closed.
func (l *Log) write() {
	defer close(l.done)
	bw := bufio.NewWriterSize(l.w, 64<<10)
	for ln := range l.q {
		l.flushMaster(bw)
		switch {
		case ln.src == nil:
			bw.Write(ln.text)
			bw.WriteByte('\n')
		default:
			if n := ln.src.droppedLines.Swap(0); n > 0 {
				b := ln.src.droppedBytes.Swap(0)
				fmt.Fprintf(bw, "%s[launch: %d lines (%s) dropped]\n", l.prefix(ln.src.name), n, humanBytes(b))
			}
			if !ln.mark {
				bw.WriteString(l.prefix(ln.src.name))
				bw.Write(ln.text)
				bw.WriteByte('\n')
			}
		}
		if len(l.q) == 0 {
			l.flushMaster(bw)
			bw.Flush()
		}
	}
	l.flushMaster(bw)
	bw.Flush()
}

// follow reads r line by line until EOF and closes it. onLine, if set,
// sees every line first; onEOF, if set, runs at EOF. A nil Log only feeds
// onLine.
func (l *Log) follow(name string, r *os.File, stderr bool, onLine func([]byte), onEOF func()) {
	src := &source{name: name, stderr: stderr}
	if l == nil {
		l = &Log{} // discards: emit checks q == nil
	} else {
		l.wg.Add(1)
	}
	go func() {
		if l.q != nil {
			defer l.wg.Done()
		}
		defer r.Close()
		if onEOF != nil {
			defer onEOF()
		}
		br := bufio.NewReaderSize(r, maxLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				text := line
				if text[len(text)-1] == '\n' {
					text = text[:len(text)-1]
				}
				if onLine != nil {
					onLine(text)
				}
				l.emit(src, text)
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if l.q != nil && src.droppedLines.Load() > 0 {
			l.q <- logLine{src: src, mark: true}
		}
	}()
}

// emit queues one line without ever blocking.
func (l *Log) emit(src *source, text []byte) {
	if l.q == nil {
		return
	}
	cp := append([]byte(nil), text...)
	if l.Tee != nil {
		l.Tee(src.name, src.stderr, cp)
	}
	select {
	case l.q <- logLine{src: src, text: cp}:
	default:
		src.droppedLines.Add(1)
		src.droppedBytes.Add(int64(len(cp)) + 1)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
