package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// Load describes an HTTP load on one URL. By default it is a closed loop:
// Conns clients, each sending its next request when the previous one is
// answered. With Rate set it is an open loop: requests are due at a
// constant rate whatever the server does, and each one's latency is
// measured from the moment it was due, so a server that stalls is charged
// for every request it kept waiting (no coordinated omission).
//
// Every run is bounded by Duration and, if set, MaxRequests.
// A Load may be run several times, and concurrently; its fields must not
// change during a run.
type Load struct {
	// URL is the target; only loopback addresses belong here (the callers
	// check: loadgen and `launch bench`).
	URL string
	// Conns is the number of concurrent connections (default 64). In an
	// open loop it bounds the requests in flight: when all are busy, due
	// requests wait, and their wait counts in their latency.
	Conns int
	// Duration bounds the run (default 5s).
	Duration time.Duration
	// MaxRequests bounds the number of requests sent (0: only Duration).
	MaxRequests int64
	// NewConn sends "Connection: close" so every request uses a new TCP
	// connection — the case where balance across workers matters most.
	NewConn bool
	// Timeout is the per-request timeout (default 2s).
	Timeout time.Duration
	// Rate, when > 0, makes the load an open loop of Rate requests per
	// second in all, request k due at start + k/Rate.
	Rate float64
	// Window, when set, marks a period of interest (a reload, say): a
	// request sent or answered while it is true is counted in
	// Result.Window, every other one in Result.Steady.
	Window *atomic.Bool
	// SeenPID, when set, is called with each X-Pid value the first time a
	// connection sees it (so a few times per worker, not per request),
	// from the client goroutines, concurrently.
	SeenPID func(pid string)
	// Progress, when set, is called about every 200 ms during the run,
	// from one goroutine, with the totals so far.
	Progress func(Progress)
}

// Progress is a snapshot of a running load.
type Progress struct {
	Elapsed  time.Duration
	Requests int64 // answered, whatever the status
	Failed   int64 // socket errors, timeouts and non-2xx answers
}

// Result is what a Load measured. Latency quantiles come from an HDR
// histogram (3 significant digits).
type Result struct {
	// Requests is the number of answers, whatever their status.
	Requests int64 `json:"requests"`
	// Errors are requests that got no answer: socket errors and timeouts.
	Errors int64 `json:"errors"`
	// Non2xx are answers whose status was not 2xx.
	Non2xx int64 `json:"non_2xx"`
	// Unsent (open loop only) counts requests that were due before the
	// run ended but got no answer in it: most found no free connection
	// (the server fell that far behind), a few (at most Conns) were still
	// in flight at the end. They are in no other count.
	Unsent  int64         `json:"unsent"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// RPS is Requests per second of Elapsed.
	RPS float64 `json:"rps"`
	Quantiles
	// PerPID counts answers by the X-Pid response header ("" when absent).
	PerPID map[string]int64 `json:"per_pid"`
	// FirstErrors are a few error messages, for the report.
	FirstErrors []string `json:"first_errors,omitempty"`
	// Window and Steady split the requests by Load.Window; nil without it.
	Window *Phase `json:"window,omitempty"`
	Steady *Phase `json:"steady,omitempty"`
	// GeneratorCPU is the CPU time (user + system) this whole process
	// used during the run: the generator's own cost, from getrusage.
	GeneratorCPU time.Duration `json:"generator_cpu_ns"`
}

// Phase is the part of a run inside or outside Load.Window.
type Phase struct {
	Requests int64 `json:"requests"`
	// Failed counts socket errors, timeouts and non-2xx answers.
	Failed int64 `json:"failed"`
	Quantiles
}

// OK is the number of 2xx answers.
func (r Result) OK() int64 { return r.Requests - r.Non2xx }

// Availability is the fraction of attempted requests that got a 2xx
// answer (1 when nothing was attempted).
func (r Result) Availability() float64 {
	if n := r.Requests + r.Errors + r.Unsent; n > 0 {
		return float64(r.OK()) / float64(n)
	}
	return 1
}

// Failed is every request that did not get a 2xx answer.
func (r Result) Failed() int64 { return r.Errors + r.Non2xx + r.Unsent }

// client is one connection's loop and what it measured; only its own
// goroutine writes it, except the atomics the progress reporter reads.
type client struct {
	lat, winLat  latencies
	perPID       map[string]int64
	errs         []string
	n, e, non2xx atomic.Int64
	winN, winF   int64
}

// windowOpen reports whether Load.Window is set and true now.
func (l *Load) windowOpen() bool { return l.Window != nil && l.Window.Load() }

// answer records one answer: its status, its X-Pid, its latency, in or
// out of the window. seen is Load.SeenPID (may be nil).
func (c *client) answer(code int, pid []byte, d time.Duration, inWindow bool, seen func(string)) {
	failed := code < 200 || code > 299
	if failed {
		c.non2xx.Add(1)
	}
	c.n.Add(1)
	if n, ok := c.perPID[string(pid)]; ok {
		c.perPID[string(pid)] = n + 1
	} else {
		c.perPID[string(pid)] = 1
		if seen != nil && len(pid) > 0 {
			seen(string(pid))
		}
	}
	if inWindow {
		c.winN++
		if failed {
			c.winF++
		}
		c.winLat.record(d)
	} else {
		c.lat.record(d)
	}
}

// failure records a request that got no answer.
func (c *client) failure(err error, inWindow bool) {
	c.e.Add(1)
	if inWindow {
		c.winN++
		c.winF++
	}
	if len(c.errs) < 3 {
		c.errs = append(c.errs, err.Error())
	}
}

// Run runs the load until its duration passes, its request budget is
// spent, or ctx is done. It returns an error only for a Load it cannot
// run (a bad URL); failed requests are counted in the Result.
func (l Load) Run(ctx context.Context) (Result, error) {
	if l.Conns <= 0 {
		l.Conns = 64
	}
	if l.Duration <= 0 {
		l.Duration = 5 * time.Second
	}
	if l.Timeout <= 0 {
		l.Timeout = 2 * time.Second
	}
	t, err := newTarget(l.URL, l.NewConn)
	if err != nil {
		return Result{}, err
	}

	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(l.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	dialCtx, cancelDials := context.WithCancel(context.Background())
	defer cancelDials()
	defer context.AfterFunc(ctx, cancelDials)()

	// next hands out request k; in an open loop, with the time it is due.
	var tickets atomic.Int64
	next := func() (due time.Time, ok bool) {
		k := tickets.Add(1) - 1
		if l.MaxRequests > 0 && k >= l.MaxRequests {
			return time.Time{}, false
		}
		if l.Rate <= 0 {
			return time.Time{}, ctx.Err() == nil
		}
		due = arrival(start, l.Rate, k)
		// Requests still due when the run ends are dropped (and counted
		// in Unsent), not sent late.
		return due, due.Before(deadline) && ctx.Err() == nil
	}

	clients := make([]*client, l.Conns)
	for i := range clients {
		c := &client{lat: newLatencies(), perPID: map[string]int64{}}
		if l.Window != nil {
			c.winLat = newLatencies()
		}
		clients[i] = c
	}
	var wg sync.WaitGroup
	var loopErr error
	if l.keepAliveLoops() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loopErr = l.runLoops(ctx, t, deadline, clients, next)
		}()
	} else {
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.loop(ctx, dialCtx, t, deadline, c, next)
			}()
		}
	}
	progressDone := make(chan struct{})
	if l.Progress != nil {
		go func() {
			defer close(progressDone)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					var p Progress
					for _, c := range clients {
						p.Requests += c.n.Load()
						p.Failed += c.e.Load() + c.non2xx.Load()
					}
					p.Elapsed = time.Since(start)
					l.Progress(p)
				}
			}
		}()
	} else {
		close(progressDone)
	}
	wg.Wait()
	cancel()
	<-progressDone
	if loopErr != nil {
		return Result{}, loopErr
	}

	res := Result{Elapsed: time.Since(start), PerPID: map[string]int64{}}
	all, win, steady := newLatencies(), latencies{}, latencies{}
	if l.Window != nil {
		win, steady = newLatencies(), newLatencies()
		res.Window, res.Steady = &Phase{}, &Phase{}
	}
	for _, c := range clients {
		res.Requests += c.n.Load()
		res.Errors += c.e.Load()
		res.Non2xx += c.non2xx.Load()
		all.merge(c.lat)
		for k, v := range c.perPID {
			res.PerPID[k] += v
		}
		for _, e := range c.errs {
			if len(res.FirstErrors) < 5 {
				res.FirstErrors = append(res.FirstErrors, e)
			}
		}
		if l.Window != nil {
			all.merge(c.winLat)
			win.merge(c.winLat)
			steady.merge(c.lat)
			res.Window.Requests += c.winN
			res.Window.Failed += c.winF
		}
	}
	res.Quantiles = all.quantiles()
	if l.Window != nil {
		res.Window.Quantiles = win.quantiles()
		res.Steady.Quantiles = steady.quantiles()
		res.Steady.Requests = res.Requests + res.Errors - res.Window.Requests
		res.Steady.Failed = res.Errors + res.Non2xx - res.Window.Failed
	}
	if l.Rate > 0 {
		end := min(res.Elapsed, l.Duration)
		due := int64(l.Rate*end.Seconds()) + 1
		if l.MaxRequests > 0 {
			due = min(due, l.MaxRequests)
		}
		res.Unsent = max(0, due-res.Requests-res.Errors)
	}
	if s := res.Elapsed.Seconds(); s > 0 {
		res.RPS = float64(res.Requests) / s
	}
	res.GeneratorCPU = processCPU() - cpu0
	return res, nil
}

// loop is one client on its own connection: it takes requests from next
// until there are none, sends each, and records what came back. A
// connection that fails or that the server closes is replaced by a new
// one for the next request (not a retry: the failure counts). Requests in
// flight when the run ends (at end) are cut short and not counted.
//
// Dials use dialCtx, which has no deadline: with one (Dialer.Timeout or a
// context deadline), Go 1.26 fails some dials at once with "i/o timeout"
// when thousands of connections a second are opened and closed (seen on
// loopback; none without a deadline). A connect on loopback is refused or
// accepted at once, and dialCtx is cancelled when the run ends, which
// bounds a connect to a full accept queue.
func (l Load) loop(ctx, dialCtx context.Context, t target, end time.Time, c *client, next func() (time.Time, bool)) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	// No TCP keep-alive probes: a run is short, and enabling them costs
	// four setsockopt calls per connection.
	dialer := net.Dialer{KeepAlive: -1}
	var nc net.Conn
	var dl time.Time // nc's deadline
	br := bufio.NewReaderSize(nil, 16<<10)
	closeConn := func() {
		if nc != nil {
			nc.Close()
			nc = nil
		}
	}
	defer closeConn()
	var wait *time.Timer
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		due, ok := next()
		if !ok {
			return
		}
		if d := time.Until(due); !due.IsZero() && d > 0 {
			if wait == nil {
				wait = time.NewTimer(d)
			} else {
				wait.Reset(d)
			}
			select {
			case <-ctx.Done():
				return
			case <-wait.C:
			}
		}
		inWindow := l.windowOpen()
		t0 := time.Now()
		if !due.IsZero() {
			t0 = due // open loop: latency counts from when the request was due
		}
		if nc == nil {
			var err error
			if nc, err = dialer.DialContext(dialCtx, "tcp", t.addr); err != nil {
				nc = nil
				if ctx.Err() != nil {
					return // the run ended: not the server's failure
				}
				c.failure(err, inWindow)
				continue
			}
			br.Reset(nc)
			dl = time.Time{}
		}
		// The connection's deadline moves only when less than half the
		// timeout is left: a request gets between Timeout/2 and Timeout
		// (never past the run's end), and the timer is not reset on every
		// request, which costs about 5% of the generator's CPU.
		var err error
		if now := time.Now(); dl.Sub(now) < l.Timeout/2 && dl.Before(end) {
			dl = now.Add(l.Timeout)
			if dl.After(end) {
				dl = end
			}
			err = nc.SetDeadline(dl)
		}
		if err == nil {
			_, err = nc.Write(t.request)
		}
		if err == nil {
			err = resp.Read(br)
		}
		if err != nil {
			closeConn()
			if !time.Now().Before(end) || ctx.Err() != nil {
				return // cut short by the end of the run
			}
			c.failure(err, inWindow || l.windowOpen())
			continue
		}
		d := time.Since(t0)
		if l.NewConn || resp.ConnectionClose() {
			awaitClose(nc, br)
			closeConn()
		}
		inWindow = inWindow || l.windowOpen()
		c.answer(resp.StatusCode(), resp.Header.Peek("X-Pid"), d, inWindow, l.SeenPID)
	}
}

// awaitClose reads the server's FIN if it has already arrived (one
// non-blocking read), so that the server, which closed first, keeps the
// TIME_WAIT state rather than this client. It never waits: a server whose
// FIN comes late (PM2's cluster mode, where the primary still holds the
// socket) must not slow the load, and wrk does not wait either. On Linux,
// loopback connections may reuse a TIME_WAIT port anyway (tcp_tw_reuse=2).
func awaitClose(nc net.Conn, br *bufio.Reader) {
	if br.Buffered() > 0 {
		return // unexpected bytes after the response: close now
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		awaitFIN(int(fd))
		return true // done either way: never wait for readability
	})
}

// awaitFIN is awaitClose's one non-blocking read on a raw fd: 0 (EOF) if
// the server's FIN is there, EAGAIN if not.
func awaitFIN(fd int) {
	var b [1]byte
	_, _ = unix.Read(fd, b[:])
}

// target is where a Load sends its requests: a TCP address and the bytes
// of the one request, built once.
type target struct {
	addr    string
	request []byte
}

// newTarget builds the request for an http:// URL: GET, HTTP/1.1, a Host
// header, and "Connection: close" for one connection per request.
func newTarget(rawURL string, newConn bool) (target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return target{}, fmt.Errorf("url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return target{}, fmt.Errorf("url %q: want http://HOST:PORT/PATH", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", u.RequestURI(), u.Host)
	if newConn {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return target{addr: addr, request: []byte(b.String())}, nil
}
