package workers

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func texts(lines []LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Worker + ":" + l.Text
	}
	return out
}

func TestRingTail(t *testing.T) {
	r := NewRing(3, 1<<10)
	for i := range 5 {
		r.Add("a.0", false, []byte(fmt.Sprint("a", i)))
		r.Add("b.0", i%2 == 0, []byte(fmt.Sprint("b", i)))
	}
	r.Add(MasterName, false, []byte("launch: hello"))
	onlyA := func(w string) bool { return w == "a.0" }
	cases := []struct {
		name  string
		match func(string) bool
		n     int
		want  string
	}{
		{"all, last 4", nil, 4, "b.0:b3 a.0:a4 b.0:b4 launch:launch: hello"},
		{"all, more than kept", nil, 100, "a.0:a2 b.0:b2 a.0:a3 b.0:b3 a.0:a4 b.0:b4 launch:launch: hello"},
		{"one worker", onlyA, 2, "a.0:a3 a.0:a4"},
		{"none matching", func(string) bool { return false }, 5, ""},
		{"n zero", nil, 0, ""},
	}
	for _, c := range cases {
		got := strings.Join(texts(r.Tail(c.match, c.n)), " ")
		if got != c.want {
			t.Errorf("%s: Tail = %q, want %q", c.name, got, c.want)
		}
	}
	all := r.Tail(nil, 100)
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("Tail not in Seq order: %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
	if l := r.Tail(func(w string) bool { return w == "b.0" }, 1)[0]; !l.Stderr || l.Time.IsZero() {
		t.Errorf("last b.0 line %+v: want Stderr and a time", l)
	}
}

func TestRingByteLimit(t *testing.T) {
	r := NewRing(100, 100)
	for i := range 10 {
		r.Add("w.0", false, []byte(fmt.Sprintf("%02d", i)+strings.Repeat("x", 28))) // 30 bytes
	}
	got := r.Tail(nil, 100)
	if len(got) != 3 || !strings.HasPrefix(got[0].Text, "07") {
		t.Errorf("100-byte ring of 30-byte lines kept %q, want the last 3", texts(got))
	}
	r.Add("w.0", false, []byte(strings.Repeat("y", 500)))
	got = r.Tail(nil, 100)
	if len(got) != 1 || got[0].Text != strings.Repeat("y", 100) {
		t.Errorf("a line over the byte limit: kept %d lines, last %d bytes; want one line cut to 100", len(got), len(got[len(got)-1].Text))
	}
}

func TestRingDefaultsAndWrap(t *testing.T) {
	r := NewRing(0, 0)
	for i := range 2500 {
		r.Add("w.0", false, []byte(fmt.Sprint(i)))
	}
	got := r.Tail(nil, 5000)
	if len(got) != DefaultRingLines || got[0].Text != "1500" || got[len(got)-1].Text != "2499" {
		t.Errorf("default ring kept %d lines from %q to %q, want %d from 1500 to 2499",
			len(got), got[0].Text, got[len(got)-1].Text, DefaultRingLines)
	}
}

func TestRingFollowSlowReader(t *testing.T) {
	r := NewRing(10, 1<<10)
	lines, dropped, cancel := r.Follow(func(w string) bool { return w != "other.0" }, 4)
	defer cancel()
	for i := range 100 {
		r.Add("w.0", false, []byte(fmt.Sprint(i))) // "0".."99": 190 bytes + 100 newlines
		r.Add("other.0", false, []byte("not followed"))
	}
	var got []LogLine
	for len(got) < 5 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %q, then nothing: the drop marker never came", texts(got))
		}
	}
	if s := strings.Join(texts(got[:4]), " "); s != "w.0:0 w.0:1 w.0:2 w.0:3" {
		t.Errorf("first lines %q, want w.0's 0..3", s)
	}
	m := got[4]
	if m.Dropped != 96 || m.Worker != MasterName || m.Text != "[launch: 96 lines (282 B) dropped]" {
		t.Errorf("marker %+v, want 96 lines (282 B) dropped", m)
	}
	if dropped() != 96 {
		t.Errorf("dropped() = %d, want 96", dropped())
	}
	r.Add("w.0", true, []byte("after"))
	if l := <-lines; l.Text != "after" || !l.Stderr || l.Seq <= m.Seq {
		t.Errorf("line after the marker: %+v", l)
	}
	cancel()
	cancel()
	if _, ok := <-lines; ok {
		t.Error("lines still open after cancel")
	}
	r.Add("w.0", false, []byte("after cancel")) // must not block or panic
}

// TestRingTailThenFollow is the `logs --lines N -f` recipe: Follow first,
// then Tail, and skip what the tail already had.
func TestRingTailThenFollow(t *testing.T) {
	r := NewRing(0, 0)
	r.Add("w.0", false, []byte("old"))
	lines, _, cancel := r.Follow(nil, 16)
	defer cancel()
	r.Add("w.0", false, []byte("between"))
	tail := r.Tail(nil, 10)
	r.Add("w.0", false, []byte("new"))
	last := tail[len(tail)-1].Seq
	var got []string
	for len(got) < 1 {
		l := <-lines
		if l.Seq > last {
			got = append(got, l.Text)
		}
	}
	if s := strings.Join(texts(tail), " ") + " | " + strings.Join(got, " "); s != "w.0:old w.0:between | new" {
		t.Errorf("tail | follow = %q", s)
	}
}

// TestRingConcurrent runs Add, Tail and followers at once (for -race) and
// checks that every line reaches a follower or is counted as dropped.
func TestRingConcurrent(t *testing.T) {
	r := NewRing(50, 1<<10)
	const writers, each = 8, 2000
	type result struct {
		got              int
		dropped, markers uint64
	}
	results := make(chan result, 2)
	var ready sync.WaitGroup
	for _, buf := range []int{1, 100000} {
		lines, dropped, cancel := r.Follow(nil, buf)
		ready.Add(1)
		go func() {
			ready.Done()
			n, markers := 0, uint64(0)
			var last uint64
			for l := range lines {
				if l.Seq < last {
					t.Errorf("buf %d: Seq went back from %d to %d", buf, last, l.Seq)
				}
				last = l.Seq
				if l.Dropped > 0 {
					markers += l.Dropped
				} else {
					n++
				}
				if uint64(n)+markers == writers*each {
					break
				}
			}
			cancel()
			results <- result{n, dropped(), markers}
		}()
	}
	ready.Wait()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("w.%d", w)
			for i := range each {
				r.Add(name, false, []byte(fmt.Sprint(i)))
				if i%500 == 0 {
					r.Tail(nil, 100)
				}
			}
		})
	}
	wg.Wait()
	for range 2 {
		res := <-results
		if uint64(res.got)+res.dropped != writers*each || res.markers != res.dropped {
			t.Errorf("follower got %d and dropped %d (markers said %d), want %d in all", res.got, res.dropped, res.markers, writers*each)
		}
	}
}

// TestRingTeeFromLog plugs Ring.Add into Log.Tee with a real worker.
func TestRingTeeFromLog(t *testing.T) {
	s := spawner(t)
	r := NewRing(0, 0)
	log := NewLog(io.Discard, false)
	log.Tee = r.Add
	log.Printf("launch: starting %s", "t.0")
	spec := helperSpec("t.0", "exit", "EXIT_CODE=3")
	spec.Output = log
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p, 10*time.Second)
	log.Close()
	got := r.Tail(nil, 10)
	if s := strings.Join(texts(got), " "); s != "launch:launch: starting t.0 t.0:exiting with 3" || !got[1].Stderr {
		t.Errorf("ring holds %q (stderr %v), want the master line, then t.0's stderr line", s, got[len(got)-1].Stderr)
	}
}
