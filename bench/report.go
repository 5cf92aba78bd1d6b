package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a scaling run: the same app measured at several instance
// counts, one Row each. It is what `launch bench -o json` prints.
type Report struct {
	App  string `json:"app"`
	File string `json:"file"`
	URL  string `json:"url"`
	// Mode is "keep-alive" or "new-connection".
	Mode        string  `json:"mode"`
	Connections int     `json:"connections"`
	DurationS   float64 `json:"duration_s"`
	// Rate is the open-loop rate in requests/s; 0 for a closed loop.
	Rate float64 `json:"rate"`
	// CPUs is runtime.GOMAXPROCS(0) of the bench process.
	CPUs int `json:"cpus"`
	// AppCPUs and GeneratorCPUs are the pinned CPU sets (--cpus), empty
	// when nothing was pinned.
	AppCPUs       []int `json:"app_cpus,omitempty"`
	GeneratorCPUs []int `json:"generator_cpus,omitempty"`
	// GeneratorProcs is the GOMAXPROCS the load generator ran with.
	GeneratorProcs int      `json:"generator_procs"`
	Warnings       []string `json:"warnings,omitempty"`
	Runs           []Row    `json:"runs"`
}

// Row is one instance count's measurement.
type Row struct {
	Instances int     `json:"instances"`
	Requests  int64   `json:"requests"`
	RPS       float64 `json:"rps"`
	// Speedup is RPS over the baseline row's RPS (the row with 1
	// instance, else the first row); Efficiency is Speedup divided by the
	// ratio of instance counts (1 = linear scaling).
	Speedup    float64 `json:"speedup"`
	Efficiency float64 `json:"efficiency"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	// Errors are socket errors and timeouts, Non2xx answers that were not
	// 2xx, Unsent requests an open loop could not send in time.
	Errors int64 `json:"errors"`
	Non2xx int64 `json:"non_2xx"`
	Unsent int64 `json:"unsent"`
	// Availability is the fraction of attempted requests answered 2xx.
	Availability float64 `json:"availability"`
	// Fairness is Jain's index over the workers (X-Pid); null when the
	// app sends no X-Pid header.
	Fairness *float64 `json:"fairness"`
	// PerWorker counts answers by X-Pid ("" for answers without one).
	PerWorker map[string]int64 `json:"per_worker"`
	// GeneratorCPUPct is the CPU the bench process used, in % of one CPU.
	GeneratorCPUPct float64      `json:"generator_cpu_pct"`
	FirstErrors     []string     `json:"first_errors,omitempty"`
	Reload          *ReloadStats `json:"reload,omitempty"`
	Chaos           *ChaosStats  `json:"chaos,omitempty"`
}

// ReloadStats compares requests during rolling reloads with the rest.
type ReloadStats struct {
	// Requested reloads (SIGHUPs sent); Completed ended with READY=1 (or
	// the master's "reload done"); Failed were reported failed by the
	// master; the rest did not end within the run.
	Requested int `json:"requested"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	// Seconds is how long each reload took, SIGHUP to its end.
	Seconds []float64 `json:"seconds"`
	// Signal says how ends were seen: "sd_notify" (RELOADING=1/READY=1)
	// or "log" (the master's "reload done" line).
	Signal string   `json:"signal"`
	During PhaseRow `json:"during"`
	Steady PhaseRow `json:"steady"`
}

// PhaseRow is a Phase in a report's units (milliseconds).
type PhaseRow struct {
	Requests int64   `json:"requests"`
	Failed   int64   `json:"failed"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// NewPhaseRow converts p (nil gives the zero row).
func NewPhaseRow(p *Phase) PhaseRow {
	if p == nil {
		return PhaseRow{}
	}
	return PhaseRow{Requests: p.Requests, Failed: p.Failed, P50Ms: ms(p.P50), P99Ms: ms(p.P99), MaxMs: ms(p.Max)}
}

// ChaosStats is what --chaos did.
type ChaosStats struct {
	IntervalS float64 `json:"interval_s"`
	// Killed are the worker pids sent SIGKILL, in order.
	Killed []int `json:"killed"`
	// Availability repeats the row's: the share of requests answered 2xx.
	Availability float64 `json:"availability"`
}

// NewRow turns a Result at n instances into a row; speed-up and
// efficiency are filled in by Report.Finish.
func NewRow(instances int, res Result) Row {
	r := Row{
		Instances:    instances,
		Requests:     res.Requests,
		RPS:          math.Round(res.RPS*10) / 10,
		P50Ms:        ms(res.P50),
		P90Ms:        ms(res.P90),
		P99Ms:        ms(res.P99),
		P999Ms:       ms(res.P999),
		MaxMs:        ms(res.Max),
		Errors:       res.Errors,
		Non2xx:       res.Non2xx,
		Unsent:       res.Unsent,
		Availability: res.Availability(),
		PerWorker:    res.PerPID,
		FirstErrors:  res.FirstErrors,
	}
	if f, ok := Fairness(res.PerPID, instances); ok {
		f = round3(f)
		r.Fairness = &f
	}
	if res.Elapsed > 0 {
		r.GeneratorCPUPct = math.Round(1000*res.GeneratorCPU.Seconds()/res.Elapsed.Seconds()) / 10
	}
	return r
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// Finish computes every row's speed-up and efficiency against the
// baseline: the row with 1 instance, else the first row.
func (r *Report) Finish() {
	if len(r.Runs) == 0 {
		return
	}
	base := r.Runs[0]
	for _, row := range r.Runs {
		if row.Instances == 1 {
			base = row
			break
		}
	}
	for i := range r.Runs {
		row := &r.Runs[i]
		if base.RPS > 0 && base.Instances > 0 {
			row.Speedup = round3(row.RPS / base.RPS)
			row.Efficiency = round3(row.RPS / base.RPS / (float64(row.Instances) / float64(base.Instances)))
		}
	}
}

// baseline names the row speed-ups are relative to, for headings.
func (r Report) baseline() int {
	for _, row := range r.Runs {
		if row.Instances == 1 {
			return 1
		}
	}
	if len(r.Runs) > 0 {
		return r.Runs[0].Instances
	}
	return 1
}

// WriteTable writes the report as an aligned text table, then a line per
// reload or chaos run and the warnings.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "instances\treq/s\tspeed-up vs %d\tefficiency\tp50\tp99\terrors\tfairness\t\n", r.baseline())
	for _, row := range r.Runs {
		fair := "unknown"
		if row.Fairness != nil {
			fair = strconv.FormatFloat(*row.Fairness, 'f', 3, 64)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.2fx\t%.0f%%\t%s\t%s\t%s\t%s\t\n", row.Instances, thousands(row.RPS),
			row.Speedup, 100*row.Efficiency, fmtMs(row.P50Ms), fmtMs(row.P99Ms),
			thousands(float64(row.Errors+row.Non2xx+row.Unsent)), fair)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, row := range r.Runs {
		if rl := row.Reload; rl != nil {
			fmt.Fprintf(&b, "%d instances, reloads: %d of %d done", row.Instances, rl.Completed, rl.Requested)
			if rl.Failed > 0 {
				fmt.Fprintf(&b, ", %d failed", rl.Failed)
			}
			if len(rl.Seconds) > 0 {
				fmt.Fprintf(&b, " (%s s each)", joinFloats(rl.Seconds))
			}
			fmt.Fprintf(&b, "; during reloads: %s requests, %s failed, p99 %s; steady: %s requests, %s failed, p99 %s\n",
				thousands(float64(rl.During.Requests)), thousands(float64(rl.During.Failed)), fmtMs(rl.During.P99Ms),
				thousands(float64(rl.Steady.Requests)), thousands(float64(rl.Steady.Failed)), fmtMs(rl.Steady.P99Ms))
		}
		if c := row.Chaos; c != nil {
			fmt.Fprintf(&b, "%d instances, chaos: %d %s SIGKILLed (one every %gs); availability %.3f%% (%s of %s requests answered 2xx)\n",
				row.Instances, len(c.Killed), plural(len(c.Killed), "worker"), c.IntervalS, 100*c.Availability,
				thousands(float64(row.Requests-row.Non2xx)), thousands(float64(row.Requests+row.Errors+row.Unsent)))
		}
	}
	if len(r.Runs) > 0 {
		cpu := 0.0
		for _, row := range r.Runs {
			cpu = max(cpu, row.GeneratorCPUPct)
		}
		fmt.Fprintf(&b, "load: %s, %d connections, %gs per run", r.Mode, r.Connections, r.DurationS)
		if r.Rate > 0 {
			fmt.Fprintf(&b, ", open loop at %s req/s", thousands(r.Rate))
		}
		fmt.Fprintf(&b, "; the generator (GOMAXPROCS %d) used up to %.0f%% of a CPU\n", r.GeneratorProcs, cpu)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", warn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func joinFloats(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// thousands formats a count with thousands separators: 12,345.
func thousands(f float64) string {
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtMs(v float64) string { return fmtDur(time.Duration(v * 1e6)) }

// fmtDur writes a latency with 3 significant digits: 812µs, 4.21ms, 1.05s.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// FormatDuration is fmtDur for callers outside the package (progress lines).
func FormatDuration(d time.Duration) string { return fmtDur(d) }

// FormatCount is thousands for callers outside the package.
func FormatCount(f float64) string { return thousands(f) }
