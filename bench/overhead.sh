#!/usr/bin/env bash
# bench/overhead.sh: what does launch cost compared with the same app started
# by hand, and compared with PM2's cluster mode? `make bench` runs it (after
# `make build`); it takes about 11 min with RUNS=5 on a 2-vCPU VM (more when
# the machine is busy, see below).
#
#   RUNS=5 PARTS="go node" BENCH_OUT=/tmp/launch-bench bench/overhead.sh
#
# Parts (PARTS, default "go node"):
#   go    Go net/http example (bin/hello), 2 workers:
#           launch-go  bin/launch -i 2 (one shared socket, 127.0.0.1:18101)
#           launch-go-rp  bin/launch -i 2, balance: reuseport (18106)
#           go-shared  bench/sharesock.py 18105 2 bin/hello: the smallest possible
#                      launcher (python: bind once, fork+exec 2 workers with fd 3,
#                      LISTEN_FDS/LISTEN_PID, then only wait), baseline for what
#                      launch itself costs beyond sharing one socket
#           go-hand    bin/hello started twice by hand on 18102 and 18103
#           go-1proc   bin/hello once by hand on 18104 (reference only: one
#                      process, GOMAXPROCS=2, using both cores by itself)
#   node  Node example (examples/hello-node/app.js), 2 workers:
#           launch-node   bin/launch -i 2, wait_ready: true (18111)
#           launch-node-rp  the same with balance: reuseport (18117)
#           node-shared   bench/sharesock.py 18116 2 node app.js (see go-shared)
#           pm2-i2        pm2 start app.js -i 2 (PM2 defaults, @pm2/io on) (18112)
#           pm2-i2-nopmx  pm2 start app.js -i 2 --no-pmx (reference) (18113)
#           node-hand     node app.js started twice by hand on 18114 and 18115
#         PM2 comes from the peer setup (/work/shared/peer/setup.sh: pm2@7.0.4
#         under $PEER_WORK, default /tmp/peer, PM2_HOME=$PEER_WORK/pm2home).
#         Without /work/shared/peer the PM2 configs are skipped (with a
#         message); without node the whole part is skipped.
#
# Two loads per part: "keepalive" and "close" (wrk -H 'Connection: close',
# i.e. one TCP connection per request).
#
# Method (same as /work/shared/peer, see its RESULTS.md): every server of a
# part runs side by side on its own port (an idle server costs nothing). Each
# of RUNS rounds measures every (load, config) once, in an order that rotates
# from round to round, so drift of the machine hits every config alike. One
# measurement is
#   wrk -t2 -c64 -d1s -s CFG-warm.lua URL   (warm-up, discarded; counts X-Pid)
#   wrk -t2 -c64 -d5s --latency -s CFG.lua URL
# The "by hand" configs are two processes on two ports (they cannot share a
# port without a launcher). Rather than two wrk -t1 -c32 processes, ONE wrk
# -t2 -c64 drives them: CFG.lua's setup() points wrk thread 1 at the first
# port and thread 2 at the second (thread.addr), 32 connections each. Why:
# the load generator is then byte-for-byte the one used for launch (same
# process, threads, connections, code path; every config gets the same
# .lua, with all threads on one port for single-port configs), so only the
# server side differs. Each by-hand worker gets exactly half the connections
# and talks to one wrk thread only: the best case for "by hand" (perfect
# balance, no shared accept queue, each wrk thread paired with one server).
# Part of the gap to launch is therefore the cost of sharing ONE socket, not of
# launch; the *-shared configs (same sharing, no launch) measure that part.
#
# Reported per (load, config): medians (and ranges) over the rounds of
#   req/s, p99 ms  from wrk --latency
#   workers µs/req (utime+stime of the worker processes, /proc/PID/stat,
#                  during the measured wrk run) / requests answered in it
#   master µs/req  the same for launch's master or PM2's daemon ("God"),
#                  which is kept out of the workers column
#   busiest worker's share of the workers' CPU in the measured run (50% =
#                  even) and of the responses in the warm-up (X-Pid header)
# Other people's processes: this machine is shared (e.g. someone's `go test`).
# Before each measurement the script waits (QUIET_WAIT, default 180 s) until
# other processes use at most QUIET_PCT (10) % of all CPUs while our servers
# are idle; during each run it computes "other" CPU = all busy CPU time
# (/proc/stat) - servers - wrk (this shell's cutime), i.e. other processes plus
# kernel time not charged to a process; a run with more than OTHER_MAX (0.30)
# cores of it is measured again, at most RETRIES (2) times (the disturbed
# attempts are kept in disturbed.tsv, never in the medians).
# Noise: 2 cores shared by wrk and servers; req/s moves ±20% between rounds,
# CPU µs/req is much steadier. Ratios are given both as ratio of medians and
# as the median of the per-round ratios (pairs measured in the same round).
#
# Output: markdown tables on stdout, progress on stderr; raw data in
# $BENCH_OUT (default /tmp/launch-bench): runs.tsv (one row per measurement),
# summary.tsv, ratios.tsv, wrk/ (every wrk output), logs/ (server logs).
# Ports: 127.0.0.1:18100-18199 only. Every process is stopped by PID (PM2 with
# `pm2 delete` / `pm2 kill` on its own PM2_HOME); an EXIT/INT/TERM trap stops
# whatever is still running. Every wrk run is bounded (-d, and `timeout`).
#
# bin/launch and bin/hello are copied to $BENCH_OUT/bin first (a concurrent
# `make build` cannot swap them mid-run); that copy is what runs.
# The *-shared configs need python3 (>= 3.9); without it they are skipped.
# Env: RUNS (5), PARTS ("go node"), BENCH_OUT, WRK_D (5s; change only for a
# smoke test), PEER (/work/shared/peer), PEER_WORK (/tmp/peer).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-5}"
PARTS="${PARTS:-go node}"
OUT="${BENCH_OUT:-/tmp/launch-bench}"
WRK_T=2; WRK_C=64; WRK_D="${WRK_D:-5s}"
PEER="${PEER:-/work/shared/peer}"
QUIET_PCT="${QUIET_PCT:-10}"     # % of all CPUs others may use before a measurement
QUIET_WAIT="${QUIET_WAIT:-180}"  # s to wait for that, then measure anyway (noted)
OTHER_MAX="${OTHER_MAX:-0.30}"   # cores used by others during a run -> measure again
RETRIES="${RETRIES:-2}"
PEER_WORK="${PEER_WORK:-/tmp/peer}"
PM2BIN="$PEER_WORK/node_modules/.bin/pm2"
LAUNCH="$ROOT/bin/launch"; HELLO="$ROOT/bin/hello"
APPJS="$ROOT/examples/hello-node/app.js"
HZ=$(getconf CLK_TCK)
D_S=${WRK_D%s}

source "$ROOT/bench/lib.sh" # log, die, alive, port_busy, stop_pid, wrk_parse

mkdir -p "$OUT/wrk" "$OUT/logs" "$OUT/apps" || die "cannot create $OUT"
rm -f "$OUT"/wrk/*.txt "$OUT"/logs/*.log

# ---------------------------------------------------------------- requirements
[[ -x $LAUNCH && -x $HELLO ]] || { log "bin/launch or bin/hello missing: make build"; (cd "$ROOT" && make build) >&2 || die "make build failed"; }
if ! command -v wrk >/dev/null; then
  log "installing wrk via apt-get"
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null || die "could not install wrk"
fi
# snapshot the binaries: other people may run `make build` while this runs
mkdir -p "$OUT/bin" && cp -f "$LAUNCH" "$HELLO" "$OUT/bin/" || die "cannot copy binaries to $OUT/bin"
LAUNCH="$OUT/bin/launch"; HELLO="$OUT/bin/hello"
PYBIN=$(python3 -c 'import sys; print(sys.executable if sys.version_info >= (3, 9) else "")' 2>/dev/null)
[[ -n $PYBIN ]] || log "NOTE: no python3 >= 3.9: the *-shared baseline configs are SKIPPED"
HAVE_NODE=1; command -v node >/dev/null || HAVE_NODE=0
HAVE_PM2=0
if [[ " $PARTS " == *" node "* && $HAVE_NODE == 1 ]]; then
  if [[ -d $PEER ]]; then
    if [[ ! -x $PM2BIN ]]; then
      log "pm2 missing under $PEER_WORK: running $PEER/setup.sh"
      PEER_WORK="$PEER_WORK" "$PEER/setup.sh" >"$OUT/logs/peer-setup.log" 2>&1 || log "peer setup.sh failed (see $OUT/logs/peer-setup.log)"
    fi
    [[ -x $PM2BIN ]] && HAVE_PM2=1
  fi
  [[ $HAVE_PM2 == 1 ]] || log "NOTE: no pm2 ($PEER not found or its setup failed): the PM2 configs of part 'node' are SKIPPED"
fi

# PM2 uses its own home; if a daemon already runs there (someone else's), use ours.
export PM2_HOME="$PEER_WORK/pm2home"
if [[ -r $PM2_HOME/pm2.pid ]] && kill -0 "$(cat "$PM2_HOME/pm2.pid")" 2>/dev/null; then
  log "NOTE: a PM2 daemon already runs in $PM2_HOME; using $OUT/pm2home instead"
  export PM2_HOME="$OUT/pm2home"
fi
pm2() { (cd "$(dirname "$APPJS")" && "$PM2BIN" "$@"); }

# -------------------------------------------------------------------- helpers
ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' | grep . || echo 0; }
children() { ps --ppid "$1" -o pid= 2>/dev/null | awk '{print $1}' | sort -n | xargs; }
wait_http() { # URL [timeout_s]
  local i=0
  while (( i < ${2:-20} * 10 )); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" == 200 ]] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
# check_log NAME: notes the lines of a launch master's log that a clean
# run does not print (anything but start, ready, stop and the workers'
# own drain lines).
check_log() {
  grep -Ev ' (none → launching|launching → online|online → stopping|stopping → stopped \(exit code 0\))|ready \(2 of 2|workers on |all workers stopped|SIGTERM: stopping gracefully|master [^ ]+ \(pid [0-9]+\) from |control socket |\| (listening|got SIG|drained)' "$OUT/logs/$1.log" |
    grep . >"$OUT/logs/$1.unexpected" && note "$1 log has unexpected lines: $(head -5 "$OUT/logs/$1.unexpected" | tr '\n' ' ')"
}
stats() { sort -g | awk '{a[NR]=$1} END { if (NR==0) {print "NA NA NA"; exit}
  m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print m, a[1], a[NR] }'; }

mkdir -p "$OUT/lua"
# wrk scripts for CFG: CFG.lua spreads wrk's threads over the config's ports
# (thread k -> port k mod n); CFG-warm.lua also counts X-Pid per response.
write_lua() { # CFG PORT...
  local cfg=$1 p list=""; shift
  for p in "$@"; do list+="wrk.lookup(\"127.0.0.1\", \"$p\")[1], "; done
  printf 'local addrs = { %s}\nlocal n = 0\nfunction setup(thread)\n  n = n + 1\n  thread.addr = addrs[(n - 1) %% #addrs + 1]\n  if threads then table.insert(threads, thread) end\nend\n' "$list" > "$OUT/lua/$cfg.lua"
  { cat "$OUT/lua/$cfg.lua"; cat "$OUT/lua/xpid.lua.part"; } > "$OUT/lua/$cfg-warm.lua"
}
cat > "$OUT/lua/xpid.lua.part" <<'EOF'
-- counts responses per X-Pid header (warm-up runs only; a response() hook costs wrk CPU)
counts = {}
threads = {}
function response(status, headers, body)
  local p = headers["X-Pid"] or headers["x-pid"] or "none"
  counts[p] = (counts[p] or 0) + 1
end
function done(summary, latency, requests)
  local tot = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do tot[k] = (tot[k] or 0) + v end
  end
  for k, v in pairs(tot) do io.write(string.format("XPID %s %d\n", k, v)) end
end
EOF

# ------------------------------------------------- process bookkeeping/cleanup
declare -A KIND PORTS MAIN DESC WPIDS0 PM2W
STARTED=()      # every pid we started directly (masters, by-hand servers)
KNOWN_WORKERS=() # worker pids seen under launch / pm2 (for the final sweep)
WRKPIDS=()
PM2_STARTED=0
NOTES=()
note() { NOTES+=("$*"); log "NOTE: $*"; }

cleanup() {
  local p
  for p in "${WRKPIDS[@]}"; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
  for p in "${STARTED[@]}"; do stop_pid "$p" 10; done
  if (( PM2_STARTED )); then pm2 kill >/dev/null 2>&1; PM2_STARTED=0; fi
  for p in "${KNOWN_WORKERS[@]}"; do
    if alive "$p" && [[ $(ps -o comm= -p "$p") =~ ^(hello|node|PM2) ]]; then
      log "leftover worker $p: SIGKILL"; kill -KILL "$p" 2>/dev/null
    fi
  done
  STARTED=(); KNOWN_WORKERS=()
}
trap cleanup EXIT
trap 'log "interrupted"; cleanup; exit 130' INT TERM

ports_free() { local p; for p in "$@"; do port_busy "$p" && { log "port $p is already in use"; return 1; }; done; return 0; }

start_launch() { # CFG PORT SCRIPT READYKEY
  local cfg=$1 port=$2 script=$3 ready=$4 f="$OUT/apps/$1.yaml" lg="$OUT/logs/$1.log" i=0
  ports_free "$port" || return 1
  printf 'apps:\n  - name: %s\n    script: %s\n    listen: ["127.0.0.1:%s"]\n    %s\n' "$cfg" "$script" "$port" "$ready" > "$f"
  "$LAUNCH" -i 2 "$f" >"$lg" 2>&1 &
  MAIN[$cfg]=$!; STARTED+=("$!"); KIND[$cfg]=launch; PORTS[$cfg]=$port; write_lua "$cfg" "$port"
  local mode="shared socket"; [[ $ready == *reuseport* ]] && mode="balance: reuseport"
  DESC[$cfg]="\`bin/launch -i 2 $cfg.yaml\` (${ready%%$'\n'*}, $mode)"
  until grep -q "ready (2 of 2 workers online)" "$lg"; do
    if ! alive "${MAIN[$cfg]}" || (( i > 200 )); then
      log "launch ($cfg) did not report 'ready (2 of 2 workers online)' within 20 s; its log:"; sed 's/^/    /' "$lg" >&2; return 1
    fi
    sleep 0.1; i=$((i + 1))
  done
  wait_http "http://127.0.0.1:$port/" 10 || { log "$cfg: no 200 on :$port"; return 1; }
}
stop_launch() { # CFG: SIGTERM a launch master, note a non-zero exit
  local rc
  stop_pid "${MAIN[$1]}" 15; rc=$?
  log "$1 master exit status: $rc"; (( rc == 0 )) || note "$1: master exited with status $rc after SIGTERM"
}
start_hand() { # CFG "PORTS" CMD...
  local cfg=$1 ports=$2 p; shift 2
  ports_free $ports || return 1
  KIND[$cfg]=hand; PORTS[$cfg]=$ports; MAIN[$cfg]=""; write_lua "$cfg" $ports
  for p in $ports; do
    env -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES HOST=127.0.0.1 PORT=$p "$@" >"$OUT/logs/$cfg-$p.log" 2>&1 &
    MAIN[$cfg]+="$! "; STARTED+=("$!")
  done
  for p in $ports; do wait_http "http://127.0.0.1:$p/" 20 || { log "$cfg: no 200 on :$p"; return 1; }; done
}
start_shared() { # CFG PORT CMD...: bench/sharesock.py PORT 2 CMD...
  local cfg=$1 port=$2 i=0; shift 2
  ports_free "$port" || return 1
  env -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES "$PYBIN" "$ROOT/bench/sharesock.py" "$port" 2 "$@" >"$OUT/logs/$cfg.log" 2>&1 &
  MAIN[$cfg]=$!; STARTED+=("$!"); KIND[$cfg]=shared; PORTS[$cfg]=$port; write_lua "$cfg" "$port"
  DESC[$cfg]="\`bench/sharesock.py $port 2 ${*##*/}\` (minimal shared-socket parent, baseline)"
  until [[ $(children "${MAIN[$cfg]}" | wc -w) == 2 ]] && (( $(grep -c 'listening on' "$OUT/logs/$cfg.log") >= 2 )); do
    if ! alive "${MAIN[$cfg]}" || (( i > 200 )); then log "$cfg did not start; its log:"; sed 's/^/    /' "$OUT/logs/$cfg.log" >&2; return 1; fi
    sleep 0.1; i=$((i + 1))
  done
  wait_http "http://127.0.0.1:$port/" 10 || { log "$cfg: no 200 on :$port"; return 1; }
}
start_pm2() { # CFG PORT [pm2 args]
  local cfg=$1 port=$2; shift 2
  ports_free "$port" || return 1
  PM2_STARTED=1
  HOST=127.0.0.1 PORT=$port pm2 start "$APPJS" --name "$cfg" -i 2 "$@" >"$OUT/logs/$cfg.log" 2>&1 || { log "pm2 start $cfg failed"; cat "$OUT/logs/$cfg.log" >&2; return 1; }
  KIND[$cfg]=pm2; PORTS[$cfg]=$port; write_lua "$cfg" "$port"; MAIN[$cfg]=$(cat "$PM2_HOME/pm2.pid")
  DESC[$cfg]="\`pm2 start app.js -i 2${*:+ $*}\`"
  wait_http "http://127.0.0.1:$port/" 20 || { log "$cfg: no 200 on :$port"; return 1; }
  PM2W[$cfg]=$(pm2_jlist_pids "$cfg")
}
pm2_jlist_pids() { pm2 jlist 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
  console.log(JSON.parse(s).filter(p=>p.name===process.argv[1]).map(p=>p.pid).sort((a,b)=>a-b).join(" "))})' "$1"; }
# worker pids of CFG (sorted)
workers_of() {
  case ${KIND[$1]} in
    launch|shared) children "${MAIN[$1]}" ;;
    pm2) echo "${PM2W[$1]}" ;;  # from pm2 jlist at start (jlist costs ~0.2 s of CPU: not between runs)
    hand) echo "${MAIN[$1]}" | xargs -n1 | sort -n | xargs ;;
  esac
}
mgr_of() { case ${KIND[$1]} in launch|pm2|shared) echo "${MAIN[$1]}" ;; *) echo "" ;; esac; }

# ---------------------------------------------------------------- measurement
RUNS_TSV="$OUT/runs.tsv"
printf 'part\tload\tround\tconfig\treq_per_s\tp99_ms\trequests\tsock_errors\tnon2xx\tworkers_cpu_ticks\tmaster_cpu_ticks\tworkers_us_per_req\tmaster_us_per_req\ttotal_us_per_req\tbusiest_worker_cpu_share\tbusiest_worker_xpid_share_warmup\tworker_ticks\txpid_warmup\tloadavg1\twrk_cpu_cores\tother_cpu_cores\tattempt\tnote\n' | tee "$OUT/disturbed.tsv" > "$RUNS_TSV"

# /proc/stat "cpu" line -> CPU_BUSY (user+nice+system+irq+softirq), CPU_TOTAL (ticks, all CPUs)
cpu_now() { local _c u n s i w q sq st; read -r _c u n s i w q sq st _ < /proc/stat; CPU_BUSY=$((u + n + s + q + sq)); CPU_TOTAL=$((u + n + s + i + w + q + sq + st)); }
# ticks of waited-for children of this shell (cutime+cstime): wrk's CPU, without forking
child_ticks() { local l; read -r l < "/proc/$$/stat"; l=${l##*) }; set -- $l; echo $(( ${14} + ${15} )); }
# quiet_gate: the servers are idle here, so any busy CPU is someone else's. Wait
# (at most QUIET_WAIT s) until it is below QUIET_PCT % of all CPUs.
quiet_gate() {
  local waited=0 b0 t0 f
  while :; do
    cpu_now; b0=$CPU_BUSY; t0=$CPU_TOTAL; sleep 0.5; cpu_now
    f=$(( (CPU_BUSY - b0) * 100 / ((CPU_TOTAL - t0) > 0 ? (CPU_TOTAL - t0) : 1) ))
    (( f <= QUIET_PCT )) && { (( waited )) && log "quiet again after ${waited}s"; return 0; }
    if (( waited >= QUIET_WAIT )); then note "machine still busy between runs (${f}% of all CPUs in use) after waiting ${QUIET_WAIT}s; measured anyway"; return 1; fi
    (( waited == 0 )) && log "machine busy between runs: ${f}% of all CPUs in use (load average $(cut -d' ' -f1-3 /proc/loadavg)); waiting up to ${QUIET_WAIT}s"
    sleep 1.5; waited=$((waited + 2))
  done
}

# measure PART LOAD ROUND CFG: one measurement; repeated (at most RETRIES more
# times) when other processes used more than OTHER_MAX cores during it. The
# disturbed attempts go to disturbed.tsv.
measure() {
  local a
  for a in $(seq 0 "$RETRIES"); do
    measure_once "$@" "$a"
    if awk -v o="$OTHER_CORES" -v m="$OTHER_MAX" 'BEGIN{exit !(o > m)}' && (( a < RETRIES )); then
      printf '%s\n' "$ROW" >> "$OUT/disturbed.tsv"
      log "  disturbed: ${OTHER_CORES} cores used by other processes/unattributed kernel time during the run (> $OTHER_MAX): measuring again"
      continue
    fi
    printf '%s\n' "$ROW" >> "$RUNS_TSV"
    (( a > 0 )) && note "$1/$2/$4 round $3: kept attempt $((a + 1)) (earlier ones disturbed, see disturbed.tsv)"
    awk -v o="$OTHER_CORES" -v m="$OTHER_MAX" 'BEGIN{exit !(o > m)}' && note "$1/$2/$4 round $3: still disturbed after $RETRIES retries (${OTHER_CORES} other cores); kept"
    [[ -n $NOTE1 ]] && note "$1/$2/$4 round $3: $NOTE1"
    return 0
  done
}
measure_once() { # PART LOAD ROUND CFG ATTEMPT -> ROW, OTHER_CORES, NOTE1
  local part=$1 load=$2 r=$3 cfg=$4 att=$5 hdr=() ports url q pids mgr note="" wf
  [[ $load == close ]] && hdr=(-H "Connection: close")
  read -ra ports <<<"${PORTS[$cfg]}"; url="http://127.0.0.1:${ports[0]}/"
  wf="$OUT/wrk/${part}_${load}_${cfg}_${r}_a$att.txt"
  quiet_gate
  # warm-up (discarded), counting X-Pid
  timeout 20 wrk -t"$WRK_T" -c"$WRK_C" -d1s -s "$OUT/lua/$cfg-warm.lua" "${hdr[@]}" "$url" >"${wf%.txt}.warm.txt" 2>&1 &
  WRKPIDS=("$!"); wait "${WRKPIDS[@]}"
  pids=$(workers_of "$cfg"); mgr=$(mgr_of "$cfg")
  [[ -z $pids ]] && note="no worker pids;"
  [[ -n ${WPIDS0[$cfg]:-} && $pids != "${WPIDS0[$cfg]}" ]] && note+="worker pids changed (${WPIDS0[$cfg]} -> $pids);"
  for q in $pids; do [[ " ${KNOWN_WORKERS[*]} " == *" $q "* ]] || KNOWN_WORKERS+=("$q"); done
  declare -A T0=(); local m0=0 m1=0 c0 c1 b0 tt0 t0ns t1ns
  for q in $pids; do T0[$q]=$(ticks "$q"); done
  [[ -n $mgr ]] && m0=$(ticks "$mgr")
  c0=$(child_ticks); cpu_now; b0=$CPU_BUSY; tt0=$CPU_TOTAL; t0ns=$(date +%s%N)
  timeout $(( D_S + 20 )) wrk -t"$WRK_T" -c"$WRK_C" -d"$WRK_D" --latency -s "$OUT/lua/$cfg.lua" "${hdr[@]}" "$url" >"$wf" 2>&1 &
  WRKPIDS=("$!"); wait "${WRKPIDS[@]}"; WRKPIDS=()
  cpu_now; c1=$(child_ticks); t1ns=$(date +%s%N)
  local wt=() sum=0 mx=0 d
  for q in $pids; do
    if alive "$q"; then d=$(( $(ticks "$q") - ${T0[$q]} )); else d=0; note+="worker $q gone during run;"; fi
    wt+=("$d"); sum=$((sum + d)); (( d > mx )) && mx=$d
  done
  [[ -n $mgr ]] && m1=$(ticks "$mgr")
  local dm=$(( m1 - m0 )) wrkc
  wrkc=$(( c1 - c0 ))
  read -r WRK_CORES OTHER_CORES < <(awk -v b=$((CPU_BUSY - b0)) -v w="$wrkc" -v s=$((sum + dm)) -v hz="$HZ" -v ns=$((t1ns - t0ns)) \
    'BEGIN{ sec = ns/1e9; printf "%.2f %.2f\n", w/hz/sec, (b - w - s)/hz/sec }')
  local rps p99 err n2 req xp xs
  read -r rps p99 err n2 req _ < <(wrk_parse "$wf")
  xp=$(awk '/^XPID /{c[$2]+=$3} END{for (k in c) printf "%s:%d,", k, c[k]}' "${wf%.txt}.warm.txt")
  xs=$(tr ',' '\n' <<<"$xp" | awk -F: 'NF==2{t+=$2; if ($2>m) m=$2} END{ if (t>0) printf "%.3f", m/t; else print "NA"}')
  local wus mus tus cs
  wus=$(awk -v t="$sum" -v n="$req" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.2f", t/hz*1e6/n; else print "NA"}')
  mus=$(awk -v t="$dm" -v n="$req" -v hz="$HZ" -v has="$mgr" 'BEGIN{ if (has=="") print "NA"; else if (n>0) printf "%.3f", t/hz*1e6/n; else print "NA"}')
  tus=$(awk -v t="$((sum + dm))" -v n="$req" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.2f", t/hz*1e6/n; else print "NA"}')
  cs=$(awk -v m="$mx" -v t="$sum" -v k="$(wc -w <<<"$pids")" 'BEGIN{ if (t>0 && k>1) printf "%.3f", m/t; else print "NA"}')
  (( err + n2 > 0 )) && note+="wrk errors sock=$err non2xx=$n2 ($(grep -m1 'Socket errors' "$wf" | xargs));"
  NOTE1=$note
  ROW=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' \
    "$part" "$load" "$r" "$cfg" "$rps" "$p99" "$req" "$err" "$n2" "$sum" "$dm" "$wus" "$mus" "$tus" "$cs" "$xs" \
    "$(IFS=,; echo "${wt[*]}")" "${xp%,}" "$(cut -d' ' -f1 /proc/loadavg)" "$WRK_CORES" "$OTHER_CORES" "$((att + 1))" "${note:--}")
  log "$part r$r $load $cfg: $rps req/s, p99 ${p99} ms, workers ${wus} µs/req (ticks ${wt[*]}), master ${mus} µs/req, X-Pid warm-up ${xp%,}; wrk ${WRK_CORES} cores, other ${OTHER_CORES} cores${note:+ [$note]}"
}

run_rounds() { # PART CONFIG...
  local part=$1; shift
  local cfgs=("$@") n=$# r k load
  for cfg in "${cfgs[@]}"; do WPIDS0[$cfg]=$(workers_of "$cfg"); log "$cfg: workers ${WPIDS0[$cfg]}${MAIN[$cfg]:+, main/master pid(s) ${MAIN[$cfg]}}"; done
  for r in $(seq 1 "$RUNS"); do
    for load in keepalive close; do
      for k in $(seq 0 $((n - 1))); do measure "$part" "$load" "$r" "${cfgs[$(( (k + r) % n ))]}"; done
    done
  done
}

# ---------------------------------------------------------------- reporting
SUM_TSV="$OUT/summary.tsv"; RAT_TSV="$OUT/ratios.tsv"
printf 'part\tload\tconfig\trounds\tmedian_req_per_s\tmin_req_per_s\tmax_req_per_s\tmedian_p99_ms\tmedian_workers_us_per_req\tmin_workers_us\tmax_workers_us\tmedian_master_us_per_req\tmedian_total_us_per_req\tmedian_busiest_cpu_share\tmedian_busiest_xpid_share\terrors\n' > "$SUM_TSV"
printf 'part\tload\tmetric\tconfig\tbaseline\tratio_of_medians\tmedian_per_round_ratio\tmin_per_round\tmax_per_round\n' > "$RAT_TSV"
col() { awk -F'\t' -v pa="$1" -v l="$2" -v c="$3" -v k="$4" '$1==pa && $2==l && $4==c && $k!="NA" {print $k}' "$RUNS_TSV"; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN{ if (v=="NA"||v=="") print "–"; else if (d=="k") printf "%.1fk", v/1000; else if (d=="%") printf "%.0f%%", v*100; else printf ("%." d "f"), v }'; }
fmtn() { awk -v v="$1" 'BEGIN{ if (v=="NA"||v=="") {print "–"; exit} s=sprintf("%.0f", v); o=""; while (length(s)>3) { o="," substr(s,length(s)-2) o; s=substr(s,1,length(s)-3) } print s o }'; }

summarize() { # PART LOAD CFG -> appends summary row, prints markdown row
  local pa=$1 l=$2 c=$3 rps rmin rmax p99 w wmin wmax m t cs xs e nr
  nr=$(col "$pa" "$l" "$c" 5 | wc -l)
  read -r rps rmin rmax < <(col "$pa" "$l" "$c" 5 | stats)
  read -r p99 _ _ < <(col "$pa" "$l" "$c" 6 | stats)
  read -r w wmin wmax < <(col "$pa" "$l" "$c" 12 | stats)
  read -r m _ _ < <(col "$pa" "$l" "$c" 13 | stats)
  read -r t _ _ < <(col "$pa" "$l" "$c" 14 | stats)
  read -r cs _ _ < <(col "$pa" "$l" "$c" 15 | stats)
  read -r xs _ _ < <(col "$pa" "$l" "$c" 16 | stats)
  e=$( { col "$pa" "$l" "$c" 8; col "$pa" "$l" "$c" 9; } | awk '{s+=$1} END{print s+0}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pa" "$l" "$c" "$nr" "$rps" "$rmin" "$rmax" "$p99" "$w" "$wmin" "$wmax" "$m" "$t" "$cs" "$xs" "$e" >> "$SUM_TSV"
  printf '| %s | %s | **%s** | %s–%s | %s | **%s** | %s–%s | %s | %s | %s | %s | %s |\n' "$c" "${DESC[$c]}" "$(fmtn "$rps")" "$(fmt "$rmin" k)" "$(fmt "$rmax" k)" "$(fmt "$p99" 2)" \
    "$(fmt "$w" 1)" "$(fmt "$wmin" 1)" "$(fmt "$wmax" 1)" "$(fmt "$m" 2)" "$(fmt "$t" 1)" "$(fmt "$cs" %)" "$(fmt "$xs" %)" "$e"
}
table() { # PART CFG...
  local pa=$1 l c; shift
  for l in keepalive close; do
    echo
    if [[ $l == keepalive ]]; then echo "**keep-alive** (\`wrk -t2 -c64 -d$WRK_D --latency\`; for by-hand configs wrk thread 1 → first port, thread 2 → second port, 32 connections each)"
    else echo "**one connection per request** (same, plus \`-H 'Connection: close'\`)"; fi
    echo
    echo '| config | started as | median req/s | range | median p99 ms | workers CPU µs/req (median) | range | master/daemon/parent µs/req | total µs/req | busiest worker: CPU share | busiest worker: X-Pid share (warm-up) | errors |'
    echo '| --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |'
    for c in "$@"; do summarize "$pa" "$l" "$c"; done
  done
}
ratio() { # PART LOAD METRICCOL LABEL CFG BASE -> markdown row; ratios.tsv
  local pa=$1 l=$2 k=$3 lab=$4 c=$5 b=$6 mc mb rom pr
  read -r mc _ _ < <(col "$pa" "$l" "$c" "$k" | stats)
  read -r mb _ _ < <(col "$pa" "$l" "$b" "$k" | stats)
  rom=$(awk -v a="$mc" -v b="$mb" 'BEGIN{ if (a=="NA"||b=="NA"||b==0) print "NA"; else printf "%.3f", a/b }')
  pr=$(awk -F'\t' -v pa="$pa" -v l="$l" -v c="$c" -v b="$b" -v k="$k" '$1==pa && $2==l && $k!="NA" { if ($4==c) x[$3]=$k; if ($4==b) y[$3]=$k }
       END { for (r in x) if ((r in y) && y[r]>0) printf "%.4f\n", x[r]/y[r] }' "$RUNS_TSV" | stats)
  read -r pm pmin pmax <<<"$pr"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pa" "$l" "$lab" "$c" "$b" "$rom" "$pm" "$pmin" "$pmax" >> "$RAT_TSV"
  printf '| %s | %s | %s / %s | **%s** | %s (%s–%s) |' "$l" "$lab" "$c" "$b" "$(fmt "$rom" 2)" "$(fmt "$pm" 2)" "$(fmt "$pmin" 2)" "$(fmt "$pmax" 2)"
  RATIO_LAST=$rom
}
others() { # PART -> one line about other CPU use during the kept runs
  awk -F'\t' -v pa="$1" '$1==pa {print $21}' "$RUNS_TSV" | stats | { read -r m mn mx
    echo; echo "CPU used by other processes (and kernel time charged to no process) during the kept runs: median $m cores, max $mx; wrk itself: median $(awk -F'\t' -v pa="$1" '$1==pa {print $20}' "$RUNS_TSV" | stats | cut -d' ' -f1) cores. Disturbed runs measured again: $(awk -F'\t' -v pa="$1" '$1==pa' "$OUT/disturbed.tsv" | wc -l)."; }
}
reproduce() { echo; echo "Reproduce: \`cd $ROOT && make build && RUNS=$RUNS PARTS=$1 BENCH_OUT=$OUT bench/overhead.sh\`"; }

# ---------------------------------------------------------------- the parts
T_START=$(date +%s)
{ echo "# launch overhead benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r); $("$LAUNCH" --version 2>/dev/null | head -1); $(go version 2>/dev/null | awk '{print $3}'); node $(node --version 2>/dev/null || echo none); pm2 $( [[ $HAVE_PM2 == 1 ]] && node -p "require('$PEER_WORK/node_modules/pm2/package.json').version" || echo none); $(wrk --version 2>&1 | head -1 | awk '{print "wrk", $2}'). RUNS=$RUNS interleaved rounds; medians."
} > "$OUT/report.md"
cat "$OUT/report.md"
read -r _ _ _ _ _ _ _ _ ST0 _ < /proc/stat

if [[ " $PARTS " == *" go "* ]]; then
  log "=== part 1: Go hello ==="
  ok=1
  start_launch launch-go 18101 "$HELLO" "ready: notify" || ok=0
  cfgs=(launch-go)
  if (( ok )); then start_launch launch-go-rp 18106 "$HELLO" $'ready: notify\n    balance: reuseport' || ok=0; cfgs+=(launch-go-rp); fi
  if (( ok )) && [[ -n $PYBIN ]]; then start_shared go-shared 18105 "$HELLO" || ok=0; cfgs+=(go-shared); fi
  cfgs+=(go-hand go-1proc)
  if (( ok )); then start_hand go-hand "18102 18103" "$HELLO" || ok=0; DESC[go-hand]="2 × \`PORT=18102/18103 bin/hello\`"; fi
  if (( ok )); then start_hand go-1proc "18104" "$HELLO" || ok=0; DESC[go-1proc]="1 × \`PORT=18104 bin/hello\` (reference)"; fi
  sleep 1
  if (( ok )); then
    run_rounds go "${cfgs[@]}"
    stop_launch launch-go-rp
    stop_pid "${MAIN[launch-go]}" 15; rc=$?
    log "launch-go master exit status: $rc"; (( rc == 0 )) || note "launch-go: master exited with status $rc after SIGTERM"
    check_log launch-go
    { echo; echo "## 1. Go hello (bin/hello): launch -i 2 vs the same app started twice by hand"
      table go "${cfgs[@]}"
      echo
      echo '| load | metric | ratio | of medians | median of per-round ratios (range) |'
      echo '| --- | --- | --- | ---: | --- |'
      for l in keepalive close; do
        ratio go $l 5 "req/s" launch-go go-hand; echo
        ratio go $l 12 "workers CPU µs/req" launch-go go-hand; echo
        ratio go $l 14 "total CPU µs/req (incl. master)" launch-go go-hand; echo
        ratio go $l 5 "req/s" launch-go-rp go-hand; echo
        ratio go $l 12 "workers CPU µs/req" launch-go-rp go-hand; echo
        if [[ -n $PYBIN ]]; then
          ratio go $l 5 "req/s" launch-go go-shared; echo
          ratio go $l 12 "workers CPU µs/req" launch-go go-shared; echo
          ratio go $l 5 "req/s (shared socket vs 2 ports, no launch)" go-shared go-hand; echo
          ratio go $l 12 "workers CPU µs/req (shared socket vs 2 ports, no launch)" go-shared go-hand; echo
        fi
      done
      others go
      reproduce go
    } | tee -a "$OUT/report.md"
  else
    echo; echo "## 1. Go hello: NOT MEASURED (a server failed to start; see the log above and $OUT/logs)" | tee -a "$OUT/report.md"
  fi
  cleanup
fi

if [[ " $PARTS " == *" node "* ]]; then
  log "=== part 2: Node hello ==="
  if [[ $HAVE_NODE == 0 ]]; then
    echo; echo "## 2. Node hello: SKIPPED (node not found)" | tee -a "$OUT/report.md"
  else
    ok=1; cfgs=(launch-node launch-node-rp)
    start_launch launch-node 18111 "$APPJS" "wait_ready: true" || ok=0
    if (( ok )); then start_launch launch-node-rp 18117 "$APPJS" $'wait_ready: true\n    balance: reuseport' || ok=0; fi
    if (( ok )) && [[ -n $PYBIN ]]; then start_shared node-shared 18116 node "$APPJS" || ok=0; cfgs+=(node-shared); fi
    if (( ok && HAVE_PM2 )); then
      start_pm2 pm2-i2 18112 || ok=0
      (( ok )) && { start_pm2 pm2-i2-nopmx 18113 --no-pmx || ok=0; }
      DESC[pm2-i2-nopmx]="\`pm2 start app.js -i 2 --no-pmx\` (reference)"
      cfgs+=(pm2-i2 pm2-i2-nopmx)
    fi
    if (( ok )); then start_hand node-hand "18114 18115" node "$APPJS" || ok=0; DESC[node-hand]="2 × \`PORT=18114/18115 node app.js\`"; cfgs+=(node-hand); fi
    sleep 1
    if (( ok )); then
      run_rounds node "${cfgs[@]}"
      for c in "${cfgs[@]}"; do
        [[ ${KIND[$c]} == pm2 ]] || continue
        now=$(pm2_jlist_pids "$c"); [[ $now == "${PM2W[$c]}" ]] || note "$c: pm2 worker pids changed during the run (${PM2W[$c]} -> $now)"
      done
      stop_launch launch-node-rp
      stop_pid "${MAIN[launch-node]}" 15; rc=$?
      log "launch-node master exit status: $rc"; (( rc == 0 )) || note "launch-node: master exited with status $rc after SIGTERM"
      check_log launch-node
      { echo; echo "## 2. Node hello (examples/hello-node/app.js): launch -i 2 vs PM2 cluster -i 2 vs by hand"
        (( HAVE_PM2 )) || { echo; echo "(PM2 configs skipped: no pm2; see the message above.)"; }
        table node "${cfgs[@]}"
        echo
        echo '| load | metric | ratio | of medians | median of per-round ratios (range) | target | met? |'
        echo '| --- | --- | --- | ---: | --- | --- | --- |'
        for l in keepalive close; do
          if (( HAVE_PM2 )); then
            ratio node $l 12 "workers CPU µs/req" launch-node pm2-i2
            if [[ $l == keepalive ]]; then
              printf ' ≤ 0.85 | %s |\n' "$(awk -v r="$RATIO_LAST" 'BEGIN{ if (r=="NA") print "?"; else print (r<=0.85)?"yes":"**no**" }')"
            else echo ' | |'; fi
            ratio node $l 14 "total CPU µs/req (incl. master/daemon)" launch-node pm2-i2; echo ' | |'
            ratio node $l 5 "req/s" launch-node pm2-i2
            if [[ $l == close ]]; then
              printf ' ≥ 1.8 | %s |\n' "$(awk -v r="$RATIO_LAST" 'BEGIN{ if (r=="NA") print "?"; else print (r>=1.8)?"yes":"**no**" }')"
            else echo ' | |'; fi
            ratio node $l 12 "workers CPU µs/req" launch-node pm2-i2-nopmx; echo ' | |'
            ratio node $l 5 "req/s" launch-node pm2-i2-nopmx; echo ' | |'
          fi
          ratio node $l 5 "req/s" launch-node node-hand; echo ' | |'
          ratio node $l 12 "workers CPU µs/req" launch-node node-hand; echo ' | |'
          ratio node $l 5 "req/s" launch-node-rp node-hand; echo ' | |'
          ratio node $l 12 "workers CPU µs/req" launch-node-rp node-hand; echo ' | |'
          if [[ -n $PYBIN ]]; then
            ratio node $l 5 "req/s" launch-node node-shared; echo ' | |'
            ratio node $l 12 "workers CPU µs/req" launch-node node-shared; echo ' | |'
            ratio node $l 5 "req/s (shared socket vs 2 ports, no launch)" node-shared node-hand; echo ' | |'
            ratio node $l 12 "workers CPU µs/req (shared socket vs 2 ports, no launch)" node-shared node-hand; echo ' | |'
          fi
        done
        others node
        reproduce node
      } | tee -a "$OUT/report.md"
    else
      echo; echo "## 2. Node hello: NOT MEASURED (a server failed to start; see the log above and $OUT/logs)" | tee -a "$OUT/report.md"
    fi
    cleanup
  fi
fi

read -r _ _ _ _ _ _ _ _ ST1 _ < /proc/stat
T_END=$(date +%s)
{ echo
  echo "Took $(( (T_END - T_START) / 60 )) min $(( (T_END - T_START) % 60 )) s. CPU steal during the run: $(awk -v a="$ST0" -v b="$ST1" -v s="$((T_END - T_START))" -v hz="$HZ" -v n="$(nproc)" 'BEGIN{ if (s>0) printf "%.1f%%", (b-a)/hz/(s*n)*100; else print "?" }'). Raw data: $OUT/{runs,summary,ratios}.tsv, wrk outputs in $OUT/wrk, logs in $OUT/logs."
  if (( ${#NOTES[@]} )); then echo; echo "Notes:"; for n in "${NOTES[@]}"; do echo "- $n"; done; fi
} | tee -a "$OUT/report.md"
