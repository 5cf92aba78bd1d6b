package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestJain(t *testing.T) {
	for _, c := range []struct {
		counts  map[string]int64
		workers int
		want    float64
	}{
		{map[string]int64{"a": 50, "b": 50}, 2, 1},
		{map[string]int64{"a": 100}, 2, 0.5},
		{map[string]int64{"a": 75, "b": 25}, 2, 0.8},
		{map[string]int64{}, 2, 0},
	} {
		if got := Jain(c.counts, c.workers); fmt.Sprintf("%.3f", got) != fmt.Sprintf("%.3f", c.want) {
			t.Errorf("Jain(%v, %d) = %.3f, want %.3f", c.counts, c.workers, got, c.want)
		}
	}
	if s := Shares(map[string]int64{"a": 25, "b": 75}); s != "75/25" {
		t.Errorf("Shares = %q", s)
	}
}

// TestLoadCountsEveryRequest runs the generator against a real server on
// 127.0.0.1, bounded by a request budget, in both connection modes.
func TestLoadCountsEveryRequest(t *testing.T) {
	var conns atomic.Int64
	var served atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			w.Header().Set("X-Pid", strconv.Itoa(int(served.Load()%2)))
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	for _, newConn := range []bool{false, true} {
		conns.Store(0)
		served.Store(0)
		res, err := Load{URL: "http://" + l.Addr().String() + "/", Conns: 4, Duration: 10 * time.Second, MaxRequests: 400, NewConn: newConn}.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 400 || res.Errors != 0 || served.Load() != 400 {
			t.Errorf("newConn=%v: %d requests, %d errors, server saw %d; want 400, 0, 400", newConn, res.Requests, res.Errors, served.Load())
		}
		if newConn && conns.Load() < 400 || !newConn && conns.Load() > 4 {
			t.Errorf("newConn=%v: %d TCP connections for 400 requests", newConn, conns.Load())
		}
		if res.PerPID["0"]+res.PerPID["1"] != 400 || res.P99 <= 0 || res.P50 > res.P99 {
			t.Errorf("newConn=%v: per pid %v, p50 %s, p99 %s", newConn, res.PerPID, res.P50, res.P99)
		}
	}
}
