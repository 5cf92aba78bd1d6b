package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency range and precision of the histograms: 1 µs to 5 minutes, 3
// significant digits (a recorded value is off by at most 0.1%), about
// 200 kB per histogram whatever the number of samples.
const (
	latencyMin    = int64(time.Microsecond)
	latencyMax    = int64(5 * time.Minute)
	latencyDigits = 3
)

// latencies is an HDR histogram of durations. Not safe for concurrent
// use: each client goroutine records into its own, merged at the end.
type latencies struct{ h *hdrhistogram.Histogram }

func newLatencies() latencies {
	return latencies{hdrhistogram.New(latencyMin, latencyMax, latencyDigits)}
}

// record adds d, clamped into the histogram's range (a sample is never
// dropped: one above 5 minutes counts as 5 minutes).
func (l latencies) record(d time.Duration) {
	v := min(max(int64(d), latencyMin), latencyMax)
	_ = l.h.RecordValue(v) // in range by construction
}

func (l latencies) merge(o latencies) { l.h.Merge(o.h) }

func (l latencies) count() int64 { return l.h.TotalCount() }

// quantile returns the latency below which a fraction q (0..1) of the
// samples fall; 0 when there are none.
func (l latencies) quantile(q float64) time.Duration {
	return time.Duration(l.h.ValueAtQuantile(q * 100))
}

func (l latencies) max() time.Duration { return time.Duration(l.h.Max()) }

// Quantiles are the latency percentiles a report shows.
type Quantiles struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

func (l latencies) quantiles() Quantiles {
	if l.count() == 0 {
		return Quantiles{}
	}
	return Quantiles{
		P50:  l.quantile(0.50),
		P90:  l.quantile(0.90),
		P99:  l.quantile(0.99),
		P999: l.quantile(0.999),
		Max:  l.max(),
	}
}
