package workers

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Ring defaults: per worker, the last DefaultRingLines lines, and no more
// than DefaultRingBytes bytes of text.
const (
	DefaultRingLines = 1000
	DefaultRingBytes = 256 << 10
)

// MasterName is the worker name under which the master's own lines
// ("launch: ...") are kept; worker names always carry an instance number
// ("web.0"), so it cannot collide with one.
const MasterName = "launch"

// LogLine is one line of output kept by a Ring.
type LogLine struct {
	// Seq orders lines across all workers of a Ring: it starts at 1 and
	// grows by one per Add.
	Seq uint64
	// Time is when the line was added.
	Time time.Time
	// Worker is the worker's name ("web.0"), or MasterName for the
	// master's own lines.
	Worker string
	// Stderr is true for lines the worker wrote to stderr.
	Stderr bool
	// Text is the line without its newline. A master line is the whole
	// line as the master printed it ("launch: web.0: ..."); a worker line
	// is what the worker wrote, without the "web.0 | " prefix.
	Text string
	// Dropped is non-zero only on a drop marker from Follow: the number
	// of lines the follower missed because it read too slowly. Its Text
	// says so ("[launch: 12 lines (1.2 KB) dropped]") and its Worker is
	// MasterName.
	Dropped uint64
}

// Ring keeps the most recent output lines of every worker for
// `launch logs`: per worker at most lines lines and bytes bytes of text,
// oldest dropped first. It serves the last lines (Tail) and a live stream
// (Follow). Add never waits for a reader.
//
// A Ring is safe for concurrent use. Its zero value is not usable; call
// NewRing. Buffers are kept per worker name, so a name that goes away
// (scaled down) keeps its last lines until the name is used again.
type Ring struct {
	maxLines int
	maxBytes int

	mu        sync.Mutex
	seq       uint64                 // guarded by mu; last Seq handed out
	bufs      map[string]*lineQueue  // guarded by mu; per worker
	followers map[*follower]struct{} // guarded by mu
}

// NewRing makes a Ring that keeps, per worker, the last lines lines and at
// most bytes bytes of text (a longer single line is cut to bytes). Zero or
// negative values mean DefaultRingLines and DefaultRingBytes.
func NewRing(lines, bytes int) *Ring {
	if lines <= 0 {
		lines = DefaultRingLines
	}
	if bytes <= 0 {
		bytes = DefaultRingBytes
	}
	return &Ring{
		maxLines:  lines,
		maxBytes:  bytes,
		bufs:      make(map[string]*lineQueue),
		followers: make(map[*follower]struct{}),
	}
}

// Add records one line of worker (without its newline). Its signature fits
// Log.Tee. It never waits for a reader: followers that are behind miss the
// line and are told how many they missed. Safe for concurrent use; line is
// copied.
func (r *Ring) Add(worker string, stderr bool, line []byte) {
	if len(line) > r.maxBytes {
		line = line[:r.maxBytes]
	}
	now := time.Now()
	text := string(line)
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.bufs[worker]
	if q == nil {
		q = &lineQueue{}
		r.bufs[worker] = q
	}
	r.seq++
	ll := LogLine{Seq: r.seq, Time: now, Worker: q.name(worker), Stderr: stderr, Text: text}
	for q.n > 0 && (q.n >= r.maxLines || q.bytes+len(text) > r.maxBytes) {
		q.popFront()
	}
	q.push(ll, r.maxLines)
	for f := range r.followers {
		if f.match(worker) {
			f.offer(ll)
		}
	}
}

// Tail returns the last n lines (n ≤ 0: none) of the workers for which
// match returns true (nil matches every worker, the master included), in
// Seq order, oldest first. match runs under the Ring's lock: it must be
// quick and must not call the Ring.
func (r *Ring) Tail(match func(worker string) bool, n int) []LogLine {
	if n <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Merge from the newest end: each queue is in Seq order, so the next
	// line (going back) is the largest Seq among the queues' cursors.
	type cursor struct {
		q *lineQueue
		i int // index of the next line to take, counting from the oldest
	}
	var cs []cursor
	for name, q := range r.bufs {
		if q.n > 0 && (match == nil || match(name)) {
			cs = append(cs, cursor{q, q.n - 1})
		}
	}
	out := make([]LogLine, 0, min(n, 64))
	for len(out) < n {
		best := -1
		for k, c := range cs {
			if c.i >= 0 && (best < 0 || c.q.at(c.i).Seq > cs[best].q.at(cs[best].i).Seq) {
				best = k
			}
		}
		if best < 0 {
			break
		}
		out = append(out, *cs[best].q.at(cs[best].i))
		cs[best].i--
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Follow streams every line added from now on for the workers for which
// match returns true (nil: all), in Seq order. Up to buf lines (at least
// 1) wait for a slow reader; past that, lines are dropped and counted, and
// once the reader has caught up it receives a marker line (Dropped > 0)
// before the next line. dropped returns the total dropped so far.
//
// cancel stops the stream and closes lines; it may be called more than
// once and from any goroutine, and must be called to release the
// follower's goroutine. match runs under the Ring's lock on every Add: it
// must be quick and must not call the Ring.
//
// For `logs --lines N -f` without a gap, call Follow first, then Tail,
// and skip followed lines whose Seq is not above the last Seq of the tail.
func (r *Ring) Follow(match func(worker string) bool, buf int) (lines <-chan LogLine, dropped func() uint64, cancel func()) {
	if buf < 1 {
		buf = 1
	}
	if match == nil {
		match = func(string) bool { return true }
	}
	f := &follower{
		match: match,
		max:   buf,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		out:   make(chan LogLine),
	}
	r.mu.Lock()
	r.followers[f] = struct{}{}
	r.mu.Unlock()
	done := make(chan struct{})
	go f.run(done)
	var once sync.Once
	cancel = func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.followers, f)
			r.mu.Unlock()
			close(f.stop)
			<-done
		})
	}
	return f.out, f.dropped.Load, cancel
}

// follower is one Follow stream. Add offers lines into its bounded queue
// (never blocking); its goroutine (run, owned by the Follow call, ended by
// cancel) hands them to the reader one by one.
type follower struct {
	match   func(string) bool
	max     int
	dropped atomic.Uint64 // total lines dropped

	mu      sync.Mutex
	q       []LogLine // guarded by mu; lines and drop markers, oldest first
	head    int       // guarded by mu; index of the oldest entry in q
	queued  int       // guarded by mu; lines (not markers) in q or in run's hand
	marking bool      // guarded by mu; q's last entry is a marker still counting
	// markBytes is the bytes (text and newline) counted by that marker.
	markBytes int64 // guarded by mu

	wake chan struct{} // cap 1: something was queued
	stop chan struct{} // closed by cancel
	out  chan LogLine  // unbuffered; closed when run returns
}

// offer queues ll, or counts it as dropped when the queue is full.
func (f *follower) offer(ll LogLine) {
	f.mu.Lock()
	switch {
	case f.queued < f.max:
		f.q = append(f.q, ll)
		f.queued++
		f.marking = false
	case f.marking:
		m := &f.q[len(f.q)-1]
		m.Dropped++
		m.Seq, m.Time = ll.Seq, ll.Time
		f.markBytes += int64(len(ll.Text)) + 1
		m.Text = droppedMarker(m.Dropped, f.markBytes)
		f.dropped.Add(1)
	default:
		// The queue is full: a marker follows the queued lines and
		// counts every line dropped until the reader makes room.
		f.markBytes = int64(len(ll.Text)) + 1
		f.q = append(f.q, LogLine{Seq: ll.Seq, Time: ll.Time, Worker: MasterName, Dropped: 1, Text: droppedMarker(1, f.markBytes)})
		f.marking = true
		f.dropped.Add(1)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// droppedMarker is the marker text for n lines of b bytes, in the words
// of Log's own marker.
func droppedMarker(n uint64, b int64) string {
	return fmt.Sprintf("[launch: %d lines (%s) dropped]", n, humanBytes(b))
}

// run delivers queued entries to out until stop is closed.
func (f *follower) run(done chan<- struct{}) {
	defer close(done)
	defer close(f.out)
	for {
		ll, ok := f.next()
		if !ok {
			select {
			case <-f.wake:
				continue
			case <-f.stop:
				return
			}
		}
		select {
		case f.out <- ll:
		case <-f.stop:
			return
		}
		if ll.Dropped == 0 {
			f.mu.Lock()
			f.queued--
			f.mu.Unlock()
		}
	}
}

// next takes the oldest queued entry. A line still counts in queued until
// run has handed it over. A marker stops counting when it is taken (it is
// then the last entry, or a line already follows it), so its count is
// final when it is delivered.
func (f *follower) next() (LogLine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.head == len(f.q) {
		return LogLine{}, false
	}
	ll := f.q[f.head]
	f.q[f.head] = LogLine{}
	f.head++
	switch {
	case f.head == len(f.q):
		f.marking = false
		f.q, f.head = f.q[:0], 0
	case f.head > len(f.q)/2 && f.head >= 64:
		// A reader that never quite catches up must not grow q forever.
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
	return ll, true
}

// lineQueue is one worker's lines, oldest first, in a circular buffer that
// grows up to the Ring's line limit.
type lineQueue struct {
	worker string // the name, interned: every LogLine of the worker shares it
	buf    []LogLine
	head   int
	n      int
	bytes  int // text bytes of the lines held
}

// name interns the worker's name.
func (q *lineQueue) name(worker string) string {
	if q.worker == "" {
		q.worker = worker
	}
	return q.worker
}

// at returns the i-th line, 0 being the oldest.
func (q *lineQueue) at(i int) *LogLine { return &q.buf[(q.head+i)%len(q.buf)] }

// push appends ll; the caller has made room (q.n < limit).
func (q *lineQueue) push(ll LogLine, limit int) {
	if q.n == len(q.buf) {
		size := min(max(16, 2*len(q.buf)), limit)
		nb := make([]LogLine, size)
		for i := 0; i < q.n; i++ {
			nb[i] = *q.at(i)
		}
		q.buf, q.head = nb, 0
	}
	*q.at(q.n) = ll
	q.n++
	q.bytes += len(ll.Text)
}

// popFront drops the oldest line.
func (q *lineQueue) popFront() {
	old := q.at(0)
	q.bytes -= len(old.Text)
	*old = LogLine{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}
