// Command loadgen sends a bounded HTTP load to a loopback URL and prints
// what it measured as one JSON object: requests, errors, req/s, latency
// quantiles, and the answers per worker (from the X-Pid header) with
// Jain's fairness index. bench/fairness.sh uses it.
//
//	loadgen -url http://127.0.0.1:8080/ -c 64 -d 5s [-new-conn] [-rate R] [-workers 2] [-procs N]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/launch-go/launch/bench"
)

func main() {
	var l bench.Load
	flag.StringVar(&l.URL, "url", "http://127.0.0.1:8080/", "target URL (loopback only)")
	flag.IntVar(&l.Conns, "c", 64, "concurrent connections")
	flag.DurationVar(&l.Duration, "d", 5*time.Second, "duration")
	flag.Int64Var(&l.MaxRequests, "n", 0, "stop after this many requests (0: only -d)")
	flag.BoolVar(&l.NewConn, "new-conn", false, "one TCP connection per request")
	flag.Float64Var(&l.Rate, "rate", 0, "open loop at this many requests/s in all (0: closed loop)")
	workers := flag.Int("workers", 0, "number of workers behind the URL, for the fairness index")
	procs := flag.Int("procs", 0, "GOMAXPROCS (default: $GOMAXPROCS if set, else one per 4 CPUs, as launch bench)")
	cpuprofile := flag.String("cpuprofile", "", "write the generator's CPU profile to this file")
	flag.Parse()
	switch {
	case *procs > 0:
		runtime.GOMAXPROCS(*procs)
	case os.Getenv("GOMAXPROCS") == "":
		runtime.GOMAXPROCS(bench.GeneratorProcs(runtime.GOMAXPROCS(0)))
	}
	if err := loopbackOnly(l.URL); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
	}
	res, err := l.Run(context.Background())
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	out := struct {
		bench.Result
		Jain   float64 `json:"jain"`
		Shares string  `json:"shares"`
	}{res, bench.Jain(res.PerPID, *workers), bench.Shares(res.PerPID)}
	json.NewEncoder(os.Stdout).Encode(out)
}

// loopbackOnly refuses any target that is not a loopback address.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: only loopback targets (127.0.0.0/8, ::1) are allowed", host)
	}
	return nil
}
