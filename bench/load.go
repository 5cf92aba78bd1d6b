package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Load describes a closed-loop HTTP load: Conns clients, each sending
// its next request when the previous one is answered, for Duration (and
// at most MaxRequests in all, if set).
type Load struct {
	// URL is the target; only loopback addresses belong here.
	URL string
	// Conns is the number of concurrent clients (default 64).
	Conns int
	// Duration bounds the run (default 5s).
	Duration time.Duration
	// MaxRequests bounds the number of requests (0: no bound but Duration).
	MaxRequests int64
	// NewConn sends "Connection: close" so every request uses a new TCP
	// connection — the case where balance across workers matters most.
	NewConn bool
	// Timeout is the per-request timeout (default 2s).
	Timeout time.Duration
}

// Result is what a Load measured.
type Result struct {
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`  // socket errors and timeouts
	Non2xx   int64         `json:"non_2xx"` // answers that were not 2xx
	Elapsed  time.Duration `json:"elapsed_ns"`
	RPS      float64       `json:"rps"`
	P50      time.Duration `json:"p50_ns"`
	P90      time.Duration `json:"p90_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	// PerPID counts answers by the X-Pid response header ("" when absent).
	PerPID map[string]int64 `json:"per_pid"`
	// FirstErrors are a few error messages, for the report.
	FirstErrors []string `json:"first_errors,omitempty"`
}

// maxSamples bounds the latency samples kept (memory), per client.
const maxSamples = 1 << 20

// Run runs the load until its duration passes, its request budget is
// spent, or ctx is done.
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
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	if err := uri.Parse(nil, []byte(l.URL)); err != nil {
		return Result{}, fmt.Errorf("url %q: %w", l.URL, err)
	}
	client := &fasthttp.HostClient{
		Addr:                      string(uri.Host()),
		MaxConns:                  l.Conns,
		ReadTimeout:               l.Timeout,
		WriteTimeout:              l.Timeout,
		MaxIdemponentCallAttempts: 1, // no silent retries: every failure counts
		// Short, so the client's cleaner goroutine ends soon after a run.
		MaxIdleConnDuration:      100 * time.Millisecond,
		NoDefaultUserAgentHeader: true,
		// net.Dialer rather than fasthttp's default dialer, whose DNS
		// cache keeps a goroutine for the life of the process.
		Dial: func(addr string) (net.Conn, error) {
			return (&net.Dialer{Timeout: l.Timeout}).Dial("tcp", addr)
		},
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()

	type clientResult struct {
		lat          []time.Duration
		perPID       map[string]int64
		errs         []string
		n, e, non2xx int64
	}
	var budget sync.Mutex
	sent := int64(0)
	take := func() bool {
		if l.MaxRequests <= 0 {
			return true
		}
		budget.Lock()
		defer budget.Unlock()
		if sent >= l.MaxRequests {
			return false
		}
		sent++
		return true
	}
	results := make([]clientResult, l.Conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Add(1)
		go func(r *clientResult) {
			defer wg.Done()
			r.perPID = map[string]int64{}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil && take() {
				req.Reset()
				req.SetRequestURI(l.URL)
				if l.NewConn {
					req.SetConnectionClose()
				}
				t0 := time.Now()
				err := client.DoTimeout(req, resp, l.Timeout)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, fasthttp.ErrTimeout) {
						break
					}
					r.e++
					if len(r.errs) < 3 {
						r.errs = append(r.errs, err.Error())
					}
					continue
				}
				r.n++
				if c := resp.StatusCode(); c < 200 || c > 299 {
					r.non2xx++
				}
				r.perPID[string(resp.Header.Peek("X-Pid"))]++
				if len(r.lat) < maxSamples {
					r.lat = append(r.lat, d)
				}
			}
		}(&results[i])
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), PerPID: map[string]int64{}}
	var lat []time.Duration
	for _, r := range results {
		res.Requests += r.n
		res.Errors += r.e
		res.Non2xx += r.non2xx
		lat = append(lat, r.lat...)
		for k, v := range r.perPID {
			res.PerPID[k] += v
		}
		for _, e := range r.errs {
			if len(res.FirstErrors) < 5 {
				res.FirstErrors = append(res.FirstErrors, e)
			}
		}
	}
	res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	slices.Sort(lat)
	res.P50, res.P90, res.P99 = quantile(lat, 0.50), quantile(lat, 0.90), quantile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// Jain returns Jain's fairness index of the per-worker counts: 1 when
// every worker served the same, 1/n when one served everything. workers
// is how many workers there were (some may have served nothing); 0 means
// len(counts).
func Jain(counts map[string]int64, workers int) float64 {
	if workers < len(counts) {
		workers = len(counts)
	}
	var sum, sq float64
	for _, c := range counts {
		sum += float64(c)
		sq += float64(c) * float64(c)
	}
	if sq == 0 || workers == 0 {
		return 0
	}
	return sum * sum / (float64(workers) * sq)
}

// Shares formats per-worker counts as percentages, largest first: "52/48".
func Shares(counts map[string]int64) string {
	var total int64
	vals := make([]int64, 0, len(counts))
	for _, c := range counts {
		total += c
		vals = append(vals, c)
	}
	slices.Sort(vals)
	slices.Reverse(vals)
	out := ""
	for i, v := range vals {
		if i > 0 {
			out += "/"
		}
		out += strconv.Itoa(int(float64(v) * 100 / float64(max(total, 1))))
	}
	return out
}
