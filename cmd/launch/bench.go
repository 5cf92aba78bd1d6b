package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/launch-go/launch/bench"
	"github.com/launch-go/launch/config"
)

// benchOptions are the flags of `launch bench`.
type benchOptions struct {
	file, app     string
	instances     string
	duration      time.Duration
	warmup        time.Duration
	path          string
	conns         int
	newConn       bool
	rate          float64
	timeout       time.Duration
	output        string
	svg           string
	html          string
	cpus          string
	reload        int
	chaos         bool
	chaosInterval time.Duration
	target        string
	env           string
	readyTimeout  time.Duration
	procs         int
}

var errInterrupted = errors.New("interrupted")

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench [flags] APPFILE [NAME]",
		Short: "Measure how an app's throughput and latency scale with its instance count",
		Long: `launch bench starts the app NAME of APPFILE (default: the first app with a
listen address) under a launch master, exactly as 'launch -i N APPFILE' would,
at each instance count of --instances; waits until the master is ready
(READY=1 on its NOTIFY_SOCKET), warms up, loads the app's first listen address
with a built-in HTTP load generator for --duration, stops the master and goes
on. It prints a table (or JSON with -o json) and can draw a chart (--svg), or
write a page with the chart and the table (--html).

Load goes to loopback only (127.0.0.0/8, ::1): a 0.0.0.0 or :PORT listen
address is loaded at 127.0.0.1. Latency comes from an HDR histogram; with
--rate the load is an open loop and latency counts from when each request was
due, so stalls are not hidden (no coordinated omission). Fairness is Jain's
index over the workers named by the X-Pid response header ("unknown" when the
app sends none).

--reload N sends N SIGHUPs (rolling reloads) during each run and compares
failed requests and p99 during reloads with the rest. --chaos SIGKILLs a
random worker of the master every --chaos-interval and reports availability.
--cpus LIST runs the master and its workers on LIST and the load generator on
the other CPUs, so they do not compete; without it they share every CPU and
the figures include the generator's own cost (reported).`,
		Example: `  launch bench examples/hello/app.yaml
  launch bench app.yaml web --instances 1,2,4 --duration 5s --svg scaling.svg
  launch bench app.yaml --html report.html
  launch bench app.yaml --new-conn -o json
  launch bench app.yaml --rate 20000 --reload 2
  launch bench app.yaml --cpus 2-7          # workers on CPUs 2-7, load from 0-1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			if len(args) == 2 {
				o.app = args[1]
			}
			return runBench(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.instances, "instances", "i", "", "instance counts to measure: a `list` like 1,2,4, ranges like 1-4, max (default 1-max; max = CPUs, or the --cpus count)")
	f.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "measured load per instance count")
	f.DurationVar(&o.warmup, "warmup", time.Second, "load before each measurement, not counted")
	f.StringVar(&o.path, "path", "/", "request path")
	f.IntVarP(&o.conns, "connections", "c", 64, "concurrent connections")
	f.BoolVar(&o.newConn, "new-conn", false, "one TCP connection per request (Connection: close) instead of keep-alive")
	f.Float64Var(&o.rate, "rate", 0, "open loop: this many requests per second in all (0: closed loop, as fast as answers come)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Second, "per-request timeout")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.StringVar(&o.svg, "svg", "", "also draw req/s and p99 against instances into this SVG `file`")
	f.StringVar(&o.html, "html", "", "also write the chart and the table into this HTML `file` (one page, no scripts)")
	f.StringVar(&o.cpus, "cpus", "", "run the master and its workers on these CPUs (`list` like 2-7) and the load generator on the others")
	f.IntVar(&o.reload, "reload", 0, "rolling reloads (SIGHUP to the master) during each measured run")
	f.BoolVar(&o.chaos, "chaos", false, "SIGKILL a random worker every --chaos-interval during each measured run")
	f.DurationVar(&o.chaosInterval, "chaos-interval", 2*time.Second, "time between --chaos kills")
	f.StringVar(&o.target, "target", "", "load this loopback `host:port` instead of the app's first listen address (for apps that bind their own port)")
	f.StringVar(&o.env, "env", "", "use the app file's env_NAME section over env (as launch --env)")
	f.DurationVar(&o.readyTimeout, "ready-timeout", 60*time.Second, "how long the master may take to be ready")
	f.IntVar(&o.procs, "generator-procs", 0, "GOMAXPROCS of the load generator (default: one per 4 CPUs it shares with the app, or every CPU --cpus leaves it)")
	return cmd
}

// benchPlan is what runBench resolved from the options before starting
// anything.
type benchPlan struct {
	exe       string
	args      func(n int) []string
	url       string
	counts    []int
	appCPUs   []int
	report    bench.Report
	notifyDir string
}

func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	p, err := planBench(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(p.notifyDir)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	progress := newBenchProgress(stderr)
	for i, n := range p.counts {
		row, err := benchOne(ctx, o, p, n, progress.stage(i+1, len(p.counts), n))
		progress.clear()
		if err != nil {
			if errors.Is(err, errInterrupted) {
				return &exitError{code: exitFailure, err: fmt.Errorf("bench: interrupted at %d %s", n, plural(n, "instance"))}
			}
			return &exitError{code: exitFailure, err: fmt.Errorf("bench %s at %d %s: %w", p.url, n, plural(n, "instance"), err)}
		}
		progress.done(row)
		p.report.Runs = append(p.report.Runs, row)
	}
	p.report.Finish()

	if o.svg != "" {
		if err := writeFileWith(o.svg, p.report.WriteSVG); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
	}
	if o.html != "" {
		if err := writeFileWith(o.html, p.report.WriteHTML); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p.report); err != nil {
			return &exitError{code: exitFailure, err: fmt.Errorf("write json: %w", err)}
		}
		return nil
	}
	if err := p.report.WriteTable(stdout); err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("write table: %w", err)}
	}
	if o.svg != "" {
		fmt.Fprintf(stdout, "chart: %s\n", o.svg)
	}
	if o.html != "" {
		fmt.Fprintf(stdout, "page: %s\n", o.html)
	}
	return nil
}

// planBench checks the options, reads the app file and pins this process
// when --cpus asks; nothing is started.
func planBench(o benchOptions) (*benchPlan, error) {
	if o.output != "table" && o.output != "json" {
		return nil, usageError("-o %q: want table or json", o.output)
	}
	if o.duration <= 0 || o.warmup < 0 || o.conns <= 0 || o.rate < 0 || o.reload < 0 || o.chaosInterval <= 0 || o.timeout <= 0 {
		return nil, usageError("--duration, --connections, --timeout and --chaos-interval must be positive; --warmup, --rate and --reload not negative")
	}
	if !strings.HasPrefix(o.path, "/") {
		return nil, usageError("--path %q: want a path starting with /", o.path)
	}
	file, err := config.Load(o.file, config.Options{Env: o.env})
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	a, err := benchApp(file, o.app)
	if err != nil {
		return nil, err
	}
	target := o.target
	if target == "" {
		for _, l := range a.Listen {
			if l.Network == config.TCP {
				target = l.Address
				break
			}
		}
		if target == "" {
			return nil, usageError("app %s has no TCP listen address to load; give one with --target 127.0.0.1:PORT", a.Name)
		}
	}
	hostport, err := loopbackTarget(target)
	if err != nil {
		return nil, usageError("%v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("find the launch binary: %w", err)}
	}
	p := &benchPlan{exe: exe, url: "http://" + hostport + o.path}
	p.report = bench.Report{
		App: a.Name, File: o.file, URL: p.url, Mode: "keep-alive", Connections: o.conns,
		DurationS: o.duration.Seconds(), Rate: o.rate, CPUs: runtime.GOMAXPROCS(0),
	}
	if o.newConn {
		p.report.Mode = "new-connection"
	}
	maxN := runtime.GOMAXPROCS(0)
	if o.cpus != "" {
		if p.appCPUs, p.report.GeneratorCPUs, err = splitCPUs(o.cpus); err != nil {
			return nil, err
		}
		p.report.AppCPUs = p.appCPUs
		maxN = len(p.appCPUs)
		if maxN == 1 {
			p.report.Warnings = append(p.report.Warnings, fmt.Sprintf("--cpus %s gives the app one CPU: more than one instance cannot be faster there", o.cpus))
		}
		if len(p.report.GeneratorCPUs) == 0 {
			p.report.Warnings = append(p.report.Warnings, fmt.Sprintf("--cpus %s leaves no CPU for the load generator: it shares the workers' CPUs, and the figures include its cost", o.cpus))
		} else {
			if err := bench.PinProcess(p.report.GeneratorCPUs); err != nil {
				return nil, &exitError{code: exitFailure, err: err}
			}
			p.report.GeneratorProcs = len(p.report.GeneratorCPUs)
		}
	} else {
		p.report.Warnings = append(p.report.Warnings, fmt.Sprintf("the load generator and the workers share the same %d %s (no --cpus): the generator's own CPU use (shown above) is taken from the app, so req/s understates what the app alone could do%s",
			maxN, plural(maxN, "CPU"), map[bool]string{true: "; this machine has too few CPUs to pin them apart usefully", false: ""}[maxN < 4]))
	}
	// The generator's own threads: on the CPUs it shares with the app,
	// few (see bench.GeneratorProcs); on CPUs of its own, all of them.
	switch {
	case o.procs > 0:
		p.report.GeneratorProcs = o.procs
	case p.report.GeneratorProcs == 0:
		p.report.GeneratorProcs = bench.GeneratorProcs(runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(p.report.GeneratorProcs)
	if p.counts, err = parseInstanceList(o.instances, maxN); err != nil {
		return nil, err
	}
	name := "bench-" + strconv.Itoa(os.Getpid())
	p.args = func(n int) []string {
		args := []string{"-i", strconv.Itoa(n), "--name", name}
		if len(file.Apps) > 1 {
			args = append(args, "--only", a.Name)
		}
		if o.env != "" {
			args = append(args, "--env", o.env)
		}
		return append(args, o.file)
	}
	if p.notifyDir, err = os.MkdirTemp("", "launch-bench-"); err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("temporary directory: %w", err)}
	}
	return p, nil
}

// benchApp picks the app to measure: name, or the first app with a
// listen address, or the first app.
func benchApp(file *config.File, name string) (*config.App, error) {
	if len(file.Apps) == 0 {
		return nil, usageError("%s has no apps", file.Path)
	}
	if name != "" {
		var names []string
		for _, a := range file.Apps {
			if a.Name == name {
				return a, nil
			}
			names = append(names, a.Name)
		}
		return nil, usageError("no app %q in %s (apps: %s)", name, file.Path, strings.Join(names, ", "))
	}
	for _, a := range file.Apps {
		if len(a.Listen) > 0 {
			return a, nil
		}
	}
	return file.Apps[0], nil
}

// loopbackTarget turns a listen address into the loopback host:port to
// load: a wildcard host (0.0.0.0, ::, or none) means the loopback address
// of its family; any other host must be a loopback address.
func loopbackTarget(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("target %q: port %q: want a fixed port number 1-65535", addr, port)
	}
	switch host {
	case "", "0.0.0.0", "localhost":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("target %q: launch bench loads loopback addresses only (127.0.0.0/8, ::1)", addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// parseInstanceList reads --instances: "1,2,4", "1-4", "max", or empty
// for 1..max. The counts come back sorted, without duplicates.
func parseInstanceList(s string, maxN int) ([]int, error) {
	if s == "" {
		s = "1-max"
	}
	var out []int
	num := func(v string) (int, error) {
		if v == "max" {
			return maxN, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return 0, usageError("--instances %q: %q is not a count 1-1024 or max", s, v)
		}
		return n, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := num(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = num(hi); err != nil {
				return nil, err
			}
		}
		if b < a {
			return nil, usageError("--instances %q: range %q goes down", s, part)
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// splitCPUs reads --cpus: the app's CPUs, which must be ones this process
// may use; the generator gets the rest.
func splitCPUs(list string) (app, gen []int, err error) {
	app, err = bench.ParseCPUList(list)
	if err != nil {
		return nil, nil, usageError("--cpus: %v", err)
	}
	allowed, err := bench.AllowedCPUs()
	if err != nil {
		return nil, nil, &exitError{code: exitFailure, err: err}
	}
	for _, c := range app {
		if !slices.Contains(allowed, c) {
			return nil, nil, usageError("--cpus %s: CPU %d is not one this process may use (%v)", list, c, allowed)
		}
	}
	for _, c := range allowed {
		if !slices.Contains(app, c) {
			gen = append(gen, c)
		}
	}
	return app, gen, nil
}

func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return nil
}

// benchProgress shows what is going on, on stderr: a live line on a
// terminal, one line per finished run otherwise.
type benchProgress struct {
	w   io.Writer
	tty bool
}

func newBenchProgress(w io.Writer) *benchProgress {
	tty := false
	if f, ok := w.(*os.File); ok && os.Getenv("TERM") != "dumb" {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	return &benchProgress{w: w, tty: tty}
}

// stage returns the function that reports progress of one run.
func (p *benchProgress) stage(i, of, n int) func(what string, pr *bench.Progress, total time.Duration) {
	return func(what string, pr *bench.Progress, total time.Duration) {
		if !p.tty {
			return
		}
		line := fmt.Sprintf("[%d/%d] %d %s: %s", i, of, n, plural(n, "instance"), what)
		if pr != nil && pr.Elapsed > 0 {
			line += fmt.Sprintf(" %.1fs/%gs  %s req/s  %s failed", pr.Elapsed.Seconds(), total.Seconds(),
				bench.FormatCount(float64(pr.Requests)/pr.Elapsed.Seconds()), bench.FormatCount(float64(pr.Failed)))
		}
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	}
}

func (p *benchProgress) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *benchProgress) done(row bench.Row) {
	fmt.Fprintf(p.w, "launch bench: %d %s: %s req/s, p99 %s, %d failed\n", row.Instances, plural(row.Instances, "instance"),
		bench.FormatCount(row.RPS), bench.FormatDuration(time.Duration(row.P99Ms*1e6)), row.Errors+row.Non2xx+row.Unsent)
}
