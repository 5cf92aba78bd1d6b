// Package workers starts, watches and stops worker processes: the state
// machine of a worker (state.go), the one reaper that owns every wait
// (reaper.go), the spawner thread that forks with Pdeathsig (spawn.go), the
// LISTEN_PID trampoline (trampoline.go), readiness over NOTIFY_SOCKET and
// Node IPC (notify.go), prefixed, bounded output (output.go), and what the
// control plane reads of workers: recent lines for `launch logs`
// (ring.go), rotated log files (filelog.go) and CPU and memory per
// process group (sampler.go). None of these ever blocks a worker's output:
// a slow reader or disk loses lines, counted and marked.
//
// Invariants:
//   - Every worker is the leader of its own process group, forked from one
//     OS thread that never exits, with Pdeathsig SIGKILL: none outlives the
//     master. Grandchildren that leave the group (setsid) are reaped by the
//     master as a subreaper but not killed by Pdeathsig.
//   - Only the Reaper waits for children; a pid is signalled only while the
//     reaper holds it unreaped, so a reused pid is never signalled.
//   - When a worker's main process exits, whatever remains of its process
//     group is killed before the exit is reported.
//
// Restart decisions are not made here; see package recovery.
package workers
