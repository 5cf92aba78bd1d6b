package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/launch-go/launch/recovery"
	"github.com/launch-go/launch/workers"
)

// monitor samples every worker's CPU and memory (with its process group),
// enforces max_memory_restart, and serves the optional metrics endpoint.
type monitor struct {
	m        *master
	sampler  *workers.Sampler
	interval atomic.Int64 // ns
	draining atomic.Bool  // /readyz fails: the master is stopping

	mu        sync.RWMutex
	last      map[int]workers.Usage // by pid, from the last sample
	over      map[int]int           // pid → samples in a row over max_memory_restart
	replacing map[string]bool       // app → a memory replacement is running
	// failedAt is when a memory replacement of app.instance last failed:
	// the next try waits memoryRetry, so a broken build is not forked
	// every other sample.
	failedAt map[string]time.Time

	stop    chan struct{}
	wg      sync.WaitGroup
	metrics *http.Server
}

// memorySamples is how many samples in a row a worker must be over
// max_memory_restart before it is replaced: one spike is not a leak.
const memorySamples = 2

// memoryRetry is how long a slot whose memory replacement failed waits
// before the next one.
const memoryRetry = 30 * time.Second

// startMonitor starts sampling (and the metrics server when the app file
// asks for one); the returned func stops both.
func (m *master) startMonitor() (func(), error) {
	mo := &monitor{m: m, sampler: workers.NewSampler(), last: map[int]workers.Usage{}, over: map[int]int{},
		replacing: map[string]bool{}, failedAt: map[string]time.Time{}, stop: make(chan struct{})}
	mo.interval.Store(int64(m.settings.sampleInterval))
	m.monitor = mo
	if addr := m.settings.metrics; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(&collector{m: m})
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("GET /readyz", mo.handleReady)
		mo.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		mo.wg.Add(1)
		go func() {
			defer mo.wg.Done()
			mo.metrics.Serve(ln)
		}()
		m.say("metrics on http://%s/metrics (and /healthz, /readyz)", ln.Addr())
	}
	mo.wg.Add(1)
	go mo.run()
	return func() {
		close(mo.stop)
		if mo.metrics != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			mo.metrics.Shutdown(ctx)
			cancel()
			mo.metrics.Close()
		}
		mo.wg.Wait()
	}, nil
}

func (mo *monitor) setDraining() {
	if mo != nil {
		mo.draining.Store(true)
	}
}

// usage returns the last sample of pid.
func (mo *monitor) usage(pid int) (workers.Usage, bool) {
	if mo == nil || pid == 0 {
		return workers.Usage{}, false
	}
	mo.mu.RLock()
	defer mo.mu.RUnlock()
	u, ok := mo.last[pid]
	return u, ok
}

func (mo *monitor) run() {
	defer mo.wg.Done()
	t := time.NewTimer(time.Duration(mo.interval.Load()))
	defer t.Stop()
	for {
		select {
		case <-mo.stop:
			return
		case <-mo.m.loopDone:
			return
		case <-t.C:
		}
		mo.sample()
		t.Reset(time.Duration(mo.interval.Load()))
	}
}

// sample takes one sample of every worker and applies max_memory_restart.
func (mo *monitor) sample() {
	apps, err := mo.m.snapshotApps()
	if err != nil {
		return
	}
	type target struct {
		a  *app
		wi recovery.WorkerInfo
	}
	var pids []int
	var targets []target
	for _, a := range apps {
		for _, wi := range a.sup.Workers() {
			if wi.PID != 0 {
				pids = append(pids, wi.PID)
				targets = append(targets, target{a, wi})
			}
		}
	}
	usage := mo.sampler.Sample(pids)
	mo.mu.Lock()
	mo.last = usage
	over := map[int]int{}
	var replace []target
	for _, t := range targets {
		limit := t.a.cfg().MaxMemoryRestart
		u, ok := usage[t.wi.PID]
		if limit <= 0 || !ok || u.Memory <= limit || t.wi.Incoming || t.wi.State != workers.Online {
			continue
		}
		over[t.wi.PID] = mo.over[t.wi.PID] + 1
		key := fmt.Sprintf("%s.%d", t.a.cfg().Name, t.wi.Instance)
		if time.Since(mo.failedAt[key]) < memoryRetry {
			continue
		}
		if over[t.wi.PID] >= memorySamples && !mo.replacing[t.a.cfg().Name] {
			mo.replacing[t.a.cfg().Name] = true
			replace = append(replace, t)
		}
	}
	mo.over = over
	mo.mu.Unlock()
	for _, t := range replace {
		u := usage[t.wi.PID]
		mo.m.say("%s.%d (pid %d): %s %s over max_memory_restart %s for %d samples; replacing it (new worker first)",
			t.a.cfg().Name, t.wi.Instance, t.wi.PID, u.MemoryKind, bytesString(u.Memory), bytesString(t.a.cfg().MaxMemoryRestart), memorySamples)
		done := t.a.sup.ReplaceInstance(t.wi.Instance, recovery.ReasonMemory)
		mo.wg.Add(1)
		go func(t target) {
			defer mo.wg.Done()
			var err error
			select {
			case err = <-done:
			case <-mo.stop:
				return
			}
			mo.mu.Lock()
			if err != nil {
				mo.failedAt[fmt.Sprintf("%s.%d", t.a.cfg().Name, t.wi.Instance)] = time.Now()
			}
			delete(mo.replacing, t.a.cfg().Name)
			mo.mu.Unlock()
			if err != nil {
				mo.m.say("%s.%d: memory replacement failed: %v; the old worker keeps serving, next try in %s", t.a.cfg().Name, t.wi.Instance, err, memoryRetry)
			}
		}(t)
	}
}

// handleReady is /readyz: 200 while every app (but those stopped by
// request) has a ready worker, 503 once the master is stopping.
func (mo *monitor) handleReady(w http.ResponseWriter, r *http.Request) {
	if mo.draining.Load() {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	}
	apps, err := mo.m.snapshotApps()
	if err != nil {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	}
	for _, a := range apps {
		if a.sup.Halted() {
			continue
		}
		online := 0
		for _, wi := range a.sup.Workers() {
			if wi.State == workers.Online {
				online++
			}
		}
		if online == 0 {
			http.Error(w, a.cfg().Name+": no ready worker", http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// collector turns the master's state into Prometheus metrics on each scrape.
type collector struct{ m *master }

var (
	descState    = prometheus.NewDesc("launch_worker_state", "1 for the worker's current state.", []string{"app", "instance", "state"}, nil)
	descRestarts = prometheus.NewDesc("launch_worker_restarts_total", "Restarts of the worker slot, by reason.", []string{"app", "instance", "reason"}, nil)
	descCPU      = prometheus.NewDesc("launch_worker_cpu_seconds_total", "CPU time of the worker's process group.", []string{"app", "instance"}, nil)
	descMem      = prometheus.NewDesc("launch_worker_memory_bytes", "Memory of the worker's process group (kind: pss or rss).", []string{"app", "instance", "kind"}, nil)
	descDesired  = prometheus.NewDesc("launch_app_desired_instances", "Instances the app should run.", []string{"app"}, nil)
	descReady    = prometheus.NewDesc("launch_app_ready_instances", "Instances of the app that are online.", []string{"app"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descRestarts, descCPU, descMem, descDesired, descReady} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	apps, err := c.m.snapshotApps()
	if err != nil {
		return
	}
	for _, a := range apps {
		name := a.cfg().Name
		ready := 0
		seen := map[int]bool{}
		for _, wi := range a.sup.Workers() {
			if wi.Incoming || seen[wi.Instance] {
				continue // one series per slot: the worker that serves it
			}
			seen[wi.Instance] = true
			inst := strconv.Itoa(wi.Instance)
			if wi.State == workers.Online {
				ready++
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, name, inst, wi.State.String())
			if u, ok := c.m.monitor.usage(wi.PID); ok {
				ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, u.CPUTime.Seconds(), name, inst)
				ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(u.Memory), name, inst, u.MemoryKind)
			}
		}
		for _, si := range a.sup.Slots() {
			inst := strconv.Itoa(si.Instance)
			for _, reason := range sortedKeys(si.ByReason) {
				ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(si.ByReason[reason]), name, inst, reason)
			}
		}
		ch <- prometheus.MustNewConstMetric(descDesired, prometheus.GaugeValue, float64(a.sup.Size()), name)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, float64(ready), name)
	}
}

// bytesString writes n like "512.0 MiB".
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
