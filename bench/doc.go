// Package bench measures launch from the outside, as a user would: it
// imports no other package of launch.
//
// It owns the load generator (Load: closed loop, or open loop at a fixed
// Rate with latency counted from each request's due time; one goroutine
// and one TCP connection per client, responses parsed by fasthttp,
// latencies in HDR histograms), the scaling report of `launch bench`
// (Report, Row; WriteTable, WriteSVG) and fairness (Jain's index over the
// X-Pid header). The scripts beside it (overhead.sh, fairness.sh,
// validate.sh, vs-pm2.sh) produce the figures in the README.
//
// Invariant: every load is bounded in time (Load.Duration, and a
// per-request Timeout) and goes only where the caller points it; the
// callers (loadgen, `launch bench`) accept loopback targets only.
package bench
