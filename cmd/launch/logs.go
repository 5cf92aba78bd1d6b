package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/workers"
)

// Ring bounds per worker, for `launch logs`.
const (
	ringLines = 1000
	ringBytes = 256 << 10
)

// logStore keeps the workers' recent output (for `launch logs`) and
// writes each app's log files (out_file, error_file, log_file).
type logStore struct {
	ring *workers.Ring

	mu    sync.RWMutex
	files map[string]*workers.FileLog // by app name
}

// startLogs hooks the store into the master's output. It must run before
// the first worker starts.
func (m *master) startLogs(out *workers.Log) {
	m.logs = &logStore{ring: workers.NewRing(ringLines, ringBytes), files: map[string]*workers.FileLog{}}
	out.Tee = m.logs.add // worker lines, and the master's own under workers.MasterName
}

// add receives every worker line (Log.Tee); it never blocks for long.
func (s *logStore) add(worker string, stderr bool, line []byte) {
	s.ring.Add(worker, stderr, line)
	s.mu.RLock()
	f := s.files[appOf(worker)]
	s.mu.RUnlock()
	if f != nil {
		f.Write(worker, stderr, line)
	}
}

// openFiles opens a's log files, replacing what it had; a file that cannot
// be opened is reported and the app runs without it.
func (s *logStore) openFiles(a *config.App, say func(string, ...any)) {
	var f *workers.FileLog
	if a.OutFile != "" || a.ErrorFile != "" || a.LogFile != "" {
		var err error
		f, err = workers.NewFileLog(workers.FileLogOptions{Out: a.OutFile, Err: a.ErrorFile, Combined: a.LogFile,
			DateLayout: a.LogDateFormat, Prefix: true, MaxSize: a.LogMaxSize, MaxFiles: a.LogMaxFiles})
		if err != nil {
			say("%s: log files: %v; its output goes to the terminal only", a.Name, err)
			f = nil
		}
	}
	s.mu.Lock()
	old := s.files[a.Name]
	if f != nil {
		s.files[a.Name] = f
	} else {
		delete(s.files, a.Name)
	}
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// closeApp closes an app's log files.
func (s *logStore) closeApp(name string) {
	s.mu.Lock()
	f := s.files[name]
	delete(s.files, name)
	s.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// close closes every log file.
func (s *logStore) close() {
	s.mu.Lock()
	files := s.files
	s.files = map[string]*workers.FileLog{}
	s.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}

// appOf is the app of a worker name: "web" for "web.0".
func appOf(worker string) string {
	if i := strings.LastIndexByte(worker, '.'); i > 0 {
		return worker[:i]
	}
	return worker
}

// logMatch selects workers for `launch logs NAME`: all (or ""), an app
// ("web": its workers and the master's lines about it are not included),
// or one worker ("web.0").
func logMatch(name string) func(string) bool {
	switch {
	case name == "" || name == "all":
		return func(string) bool { return true }
	case strings.Contains(name, "."):
		if _, err := strconv.Atoi(name[strings.LastIndexByte(name, '.')+1:]); err == nil {
			return func(w string) bool { return w == name }
		}
	}
	return func(w string) bool { return appOf(w) == name && w != workers.MasterName }
}

// checkLogTarget accepts all, an app, or one of its workers (running, or
// with lines still kept).
func (m *master) checkLogTarget(name string) error {
	if name == "" || name == "all" {
		return nil
	}
	if _, err := m.targetApps(name); err == nil {
		return nil
	}
	app := appOf(name)
	if app == name {
		_, err := m.targetApps(name)
		return err
	}
	if _, err := m.targetApps(app); err != nil {
		return err
	}
	rows, _ := m.listWorkers(app)
	var have []string
	for _, r := range rows {
		if fmt.Sprintf("%s.%d", r.App, r.Instance) == name {
			return nil
		}
		have = append(have, fmt.Sprintf("%s.%d", r.App, r.Instance))
	}
	if len(m.logs.ring.Tail(func(w string) bool { return w == name }, 1)) > 0 {
		return nil
	}
	return fmt.Errorf("no worker %s (%s has %s)", name, app, strings.Join(slices.Compact(have), ", "))
}

// logLineJSON is one NDJSON line of /v1/logs.
type logLineJSON struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Worker  string `json:"worker"`
	Stderr  bool   `json:"stderr,omitempty"`
	Text    string `json:"text"`
	Dropped uint64 `json:"dropped,omitempty"`
}

func toJSON(l workers.LogLine) logLineJSON {
	return logLineJSON{Seq: l.Seq, Time: l.Time.Format("2006-01-02T15:04:05.000Z07:00"), Worker: l.Worker,
		Stderr: l.Stderr, Text: l.Text, Dropped: l.Dropped}
}

func (m *master) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("app")
	if err := m.checkLogTarget(name); err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	lines := 15 // pm2 logs --lines default
	if s := q.Get("lines"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			httpError(w, http.StatusBadRequest, "--lines "+strconv.Quote(s)+": want a number ≥ 0")
			return
		}
		lines = n
	}
	match := logMatch(name)
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	var live <-chan workers.LogLine
	var cancel func()
	if q.Get("follow") == "1" {
		// Follow first, then the tail, so no line falls between the two;
		// lines the tail already showed are skipped by Seq.
		live, _, cancel = m.logs.ring.Follow(match, 4096)
		defer cancel()
	}
	var last uint64
	for _, l := range m.logs.ring.Tail(match, lines) {
		enc.Encode(toJSON(l))
		last = l.Seq
	}
	if live == nil {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case l, ok := <-live:
			if !ok {
				return
			}
			if l.Dropped == 0 && l.Seq <= last {
				continue
			}
			if err := enc.Encode(toJSON(l)); err != nil {
				return
			}
			if flusher != nil && len(live) == 0 {
				flusher.Flush()
			}
		case <-r.Context().Done():
			return
		case <-m.loopDone:
			return
		}
	}
}
