package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBenchJain(t *testing.T) {
	for _, c := range []struct {
		name    string
		counts  map[string]int64
		workers int
		want    float64
	}{
		{"even", map[string]int64{"a": 50, "b": 50}, 2, 1},
		{"one of two served all", map[string]int64{"a": 100}, 2, 0.5},
		{"75/25", map[string]int64{"a": 75, "b": 25}, 2, 0.8},
		{"one of four", map[string]int64{"a": 10}, 4, 0.25},
		{"workers below len", map[string]int64{"a": 1, "b": 1, "c": 1}, 1, 1},
		{"empty", map[string]int64{}, 2, 0},
	} {
		if got := Jain(c.counts, c.workers); fmt.Sprintf("%.3f", got) != fmt.Sprintf("%.3f", c.want) {
			t.Errorf("%s: Jain(%v, %d) = %.3f, want %.3f", c.name, c.counts, c.workers, got, c.want)
		}
	}
	if s := Shares(map[string]int64{"a": 25, "b": 75}); s != "75/25" {
		t.Errorf("Shares = %q, want 75/25", s)
	}
	if _, ok := Fairness(map[string]int64{"": 100}, 2); ok {
		t.Errorf("Fairness without any X-Pid: known, want unknown")
	}
	if f, ok := Fairness(map[string]int64{"": 5, "1": 50, "2": 50}, 2); !ok || f != 1 {
		t.Errorf("Fairness ignoring answers without X-Pid = %v, %v; want 1, true", f, ok)
	}
}

func TestBenchRatePacing(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, c := range []struct {
		rate float64
		k    int64
		want time.Duration
	}{
		{1000, 0, 0},
		{1000, 1, time.Millisecond},
		{1000, 1000, time.Second},
		{3, 1, 333333333 * time.Nanosecond},
		{3, 3_000_000, 1_000_000 * time.Second}, // computed from k: no drift
		{0.5, 3, 6 * time.Second},
	} {
		if got := arrival(start, c.rate, c.k).Sub(start); got != c.want {
			t.Errorf("rate %g, request %d: due at +%v, want +%v", c.rate, c.k, got, c.want)
		}
	}
}

func TestBenchHistogramQuantiles(t *testing.T) {
	l := newLatencies()
	if q := l.quantiles(); q != (Quantiles{}) {
		t.Errorf("empty histogram: %+v, want zeros", q)
	}
	for i := 1; i <= 1000; i++ { // 1 ms .. 1000 ms
		l.record(time.Duration(i) * time.Millisecond)
	}
	near := func(name string, got, want time.Duration) {
		if d := got - want; d < -want/500 || d > want/500 { // 0.2%: 3 significant digits
			t.Errorf("%s = %v, want %v ± 0.2%%", name, got, want)
		}
	}
	q := l.quantiles()
	near("p50", q.P50, 500*time.Millisecond)
	near("p90", q.P90, 900*time.Millisecond)
	near("p99", q.P99, 990*time.Millisecond)
	near("p99.9", q.P999, 999*time.Millisecond)
	near("max", q.Max, 1000*time.Millisecond)
	// Out-of-range samples are clamped, never dropped.
	l.record(-time.Second)
	l.record(time.Hour)
	if l.count() != 1002 || l.max() < 4*time.Minute {
		t.Errorf("after clamped samples: count %d, max %v; want 1002, ≥ 4m", l.count(), l.max())
	}
	// Merging keeps every sample.
	o := newLatencies()
	o.record(2 * time.Second)
	l.merge(o)
	if l.count() != 1003 {
		t.Errorf("after merge: count %d, want 1003", l.count())
	}
}

// serve runs h on 127.0.0.1 for the test's duration.
func serve(t *testing.T, h http.Handler, connState func(net.Conn, http.ConnState)) string {
	t.Helper()
	srv := &http.Server{Handler: h, ConnState: connState}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + l.Addr().String() + "/"
}

// TestBenchLoadCountsEveryRequest runs the generator against a real
// server on 127.0.0.1, bounded by a request budget, in both connection
// modes.
func TestBenchLoadCountsEveryRequest(t *testing.T) {
	var conns, served atomic.Int64
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		w.Header().Set("X-Pid", strconv.Itoa(int(n%2)))
	}), func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	for _, newConn := range []bool{false, true} {
		conns.Store(0)
		served.Store(0)
		var seen sync.Map
		res, err := Load{URL: url, Conns: 4, Duration: 10 * time.Second, MaxRequests: 400, NewConn: newConn,
			SeenPID: func(pid string) { seen.Store(pid, true) }}.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 400 || res.Errors != 0 || served.Load() != 400 {
			t.Errorf("newConn=%v: %d requests, %d errors, server saw %d; want 400, 0, 400", newConn, res.Requests, res.Errors, served.Load())
		}
		if newConn && conns.Load() < 400 || !newConn && conns.Load() > 4 {
			t.Errorf("newConn=%v: %d TCP connections for 400 requests", newConn, conns.Load())
		}
		if res.PerPID["0"]+res.PerPID["1"] != 400 || res.P99 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
			t.Errorf("newConn=%v: per pid %v, p50 %s, p99 %s, max %s", newConn, res.PerPID, res.P50, res.P99, res.Max)
		}
		if _, ok := seen.Load("1"); !ok {
			t.Errorf("newConn=%v: SeenPID never called with 1", newConn)
		}
		if res.GeneratorCPU <= 0 || res.Availability() != 1 {
			t.Errorf("newConn=%v: generator CPU %v, availability %v", newConn, res.GeneratorCPU, res.Availability())
		}
	}
}

// TestBenchOpenLoopStall: a server that stalls for 1.05 s once. An open
// loop charges the stall to every request that was due during it, so
// the high percentiles show it; a closed loop would only see the few
// requests in flight (coordinated omission).
func TestBenchOpenLoopStall(t *testing.T) {
	const stall = 1050 * time.Millisecond
	var mu sync.Mutex
	var first, stallUntil time.Time
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if stallUntil.IsZero() && now.Sub(first) > 300*time.Millisecond {
			stallUntil = now.Add(stall)
		}
		until := stallUntil
		mu.Unlock()
		time.Sleep(time.Until(until))
		w.Header().Set("X-Pid", "1")
	}), nil)
	var window atomic.Bool
	res, err := Load{URL: url, Conns: 4, Duration: 2 * time.Second, Rate: 200, Timeout: 3 * time.Second, Window: &window}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests < 350 {
		t.Fatalf("%d requests, %d errors (%v); want about 400, 0", res.Requests, res.Errors, res.FirstErrors)
	}
	if res.P99 < time.Second || res.P999 < time.Second || res.Max < time.Second {
		t.Errorf("open loop over a %v stall: p99 %v, p99.9 %v, max %v; want all ≥ 1s", stall, res.P99, res.P999, res.Max)
	}
	if res.P50 > 500*time.Millisecond {
		t.Errorf("p50 %v: most requests were not stalled", res.P50)
	}
	if res.Steady == nil || res.Steady.Requests != res.Requests || res.Window.Requests != 0 {
		t.Errorf("window never set: steady %+v, window %+v", res.Steady, res.Window)
	}
}

func TestBenchOpenLoopUnsent(t *testing.T) {
	// One connection, a server that takes 50 ms, 200 requests due per
	// second: most requests cannot be sent in time.
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	}), nil)
	res, err := Load{URL: url, Conns: 1, Duration: time.Second, Rate: 200}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests > 25 || res.Unsent < 150 || res.Availability() > 0.2 {
		t.Errorf("%d requests, %d unsent, availability %.2f; want ≤ 25, ≥ 150, ≤ 0.2", res.Requests, res.Unsent, res.Availability())
	}
}

func TestBenchRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	res, err := Load{URL: "http://" + addr + "/", Conns: 2, Duration: time.Second, MaxRequests: 50}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 50 || res.OK() != 0 || len(res.FirstErrors) == 0 || !strings.Contains(res.FirstErrors[0], "refused") {
		t.Errorf("refused target: %d errors, %d ok, first errors %q", res.Errors, res.OK(), res.FirstErrors)
	}
}

func sampleReport() Report {
	r := Report{App: "web", Mode: "keep-alive", Connections: 64, DurationS: 10, CPUs: 4}
	for i, rps := range []float64{30000, 52000, 70000, 81000} {
		f := 0.99
		r.Runs = append(r.Runs, Row{Instances: i + 1, RPS: rps, P50Ms: 1.2, P99Ms: 4 + float64(i), Fairness: &f})
	}
	r.Runs[0].Fairness = nil
	r.Finish()
	return r
}

func TestBenchReportTable(t *testing.T) {
	r := sampleReport()
	if s := r.Runs[1].Speedup; s < 1.73 || s > 1.74 {
		t.Errorf("speed-up at 2 = %v, want 52/30", s)
	}
	if e := r.Runs[3].Efficiency; e < 0.67 || e > 0.68 {
		t.Errorf("efficiency at 4 = %v, want 81/30/4", e)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"speed-up vs 1", "52,000", "1.73x", "unknown", "0.990", "4.00ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchChartSVG: the chart is well-formed XML and carries its axis
// labels. BENCH_PNG=file also writes it as a PNG, to look at.
func TestBenchChartSVG(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	if p := os.Getenv("BENCH_PNG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := r.WritePNG(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := (Report{}).WriteSVG(io.Discard); err == nil {
		t.Errorf("a report without runs drew a chart")
	}
}

// checkSVG decodes every token of an SVG document and looks for the axis
// labels in its text.
func checkSVG(t *testing.T, svg []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not valid XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	for _, label := range []string{LabelInstances, LabelThroughput, LabelP99} {
		if !strings.Contains(text.String(), label) {
			t.Errorf("SVG lacks the axis label %q", label)
		}
	}
}
