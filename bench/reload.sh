#!/usr/bin/env bash
# bench/reload.sh: rolling reload under saturating load, launch vs PM2.
# `make bench-reload` runs it (after `make build`). It takes about 9 min with
# RUNS=3 (about 70 s per server per round, plus start-up).
#
#   RUNS=3 WIN_S=10 STEADY_S=5 PIN=0 BENCH_OUT=/tmp/launch-bench bench/reload.sh
#   START_NICE=10 runs launch's workers with start_nice: 10; NO_PM2=1 leaves PM2 out.
#
# Servers (side by side, each on its own port; an idle one costs nothing):
#   launch  bin/launch --name reloadbench: examples/hello-node/app.js,
#           instances: 2, wait_ready: true, shared socket (127.0.0.1:18301);
#           reloaded with `bin/launch reload web --name reloadbench`
#           (a private LAUNCH_HOME in a temp dir)
#   pm2     pm2 start app.js -i 2 (cluster mode, PM2's defaults: kill_timeout
#           1600 ms, no --wait-ready) on 127.0.0.1:18302; reloaded with
#           `pm2 reload web` (PM2_HOME in a temp dir). pm2@7.0.4 comes from the
#           peer setup ($PEER/setup.sh; PEER default: ../shared/peer next to
#           the repo; PEER_WORK default /tmp/peer). Without it the PM2 column
#           is skipped, with a message.
# The app is the same file for both. It drains on SIGTERM/SIGINT (stop
# listening, Connection: close, close idle sockets late, linger 300 ms; see its
# header), so a launcher that hands over cleanly loses no request.
#
# One round measures each server (order alternates between rounds) with:
#   warm-up    wrk -t2 -c64 -d1s (discarded)
#   for load in keepalive, close (wrk -H 'Connection: close': a new TCP
#   connection per request):
#     steady   wrk -t2 -c64 -d${STEADY_S}s --latency            (no reload)
#     reload   wrk -t2 -c64 -d${WIN_S}s --latency; from t = 1 s the script
#              reloads the app back to back (each a full roll of both
#              workers) as long as another one fits before t = WIN_S - 0.5 s,
#              so the whole window is "during reloads"
#     control  the same window as "reload", but instead of reloading, the
#              script starts and stops (SIGTERM: drain, linger, exit) a
#              separate `node app.js` on an unused port, twice per cycle:
#              the CPU a reload of 2 workers spends, without moving any
#              connection. p99 reload ÷ p99 control separates the launcher's
#              hand-over from 2 cores being busy with node start-up.
#   stranded   hammer (from the peer: go/hammer, raw HTTP/1.1, no retries,
#              2 s timeout per request) -c 64 -keepalive=false for WIN_S with
#              reloads as above: a connection that is accepted and never
#              answered is a 2 s timeout. This is how /work/shared/peer/
#              RESULTS.md found PM2 stranding about one connection per
#              replaced worker (wrk does not see them).
# Failures = wrk's "Socket errors" (connect+read+write+timeout) + "Non-2xx
# or 3xx responses"; hammer's errors by kind. Each reload's wall time (the
# CLI command, start to exit) is recorded, and each window checks that both
# worker pids changed with every reload (launch: `-o json` result ok and
# replaced = 2; PM2: pids from `pm2 jlist`).
# Reported: medians over RUNS of failed requests per reload, p99 steady vs
# during reloads (and their ratio), req/s, the reload wall time, stranded
# connections per reload; PM2/launch ratios from the same rounds.
# Targets (issue "rolling reload"): launch 0 failures in every run; p99
# during reloads ≤ 2× the steady p99.
# PIN=1: servers (launch's master and workers, PM2's daemon and workers) on
# CPU 0, the load generator on CPU 1 with one thread (wrk -t1, hammer
# GOMAXPROCS=1); default: nothing pinned (2 workers + the replacement's node
# start-up + wrk all need the 2 cores; PIN=1 halves server capacity alike for
# both).
# The machine may be shared: before each server's measurements the script waits
# (at most QUIET_WAIT, 60 s) until the whole machine is at most QUIET_PCT (15)
# % busy, and says how often it gave up waiting.
# Cleanup: launch's master by PID (SIGTERM), PM2 with `pm2 kill` on its own
# PM2_HOME, load generators by PID; a trap on EXIT does all of it.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUIET_PCT="${QUIET_PCT:-15}"; QUIET_WAIT="${QUIET_WAIT:-60}"; NOISY=0
RUNS="${RUNS:-3}"; WIN_S="${WIN_S:-10}"; STEADY_S="${STEADY_S:-5}"; PIN="${PIN:-0}"
OUT="${BENCH_OUT:-/tmp/launch-bench}/reload"
PEER="${PEER:-$ROOT/../shared/peer}"
[[ -d $PEER ]] || PEER=/work/shared/peer
PEER_WORK="${PEER_WORK:-/tmp/peer}"
PM2BIN="$PEER_WORK/node_modules/.bin/pm2"
APPJS="$ROOT/examples/hello-node/app.js"
LPORT=18301; PPORT=18302

source "$ROOT/bench/lib.sh" # log, die, alive, stop_pid, port_busy, wait_quiet, wrk_parse

mkdir -p "$OUT/wrk" "$OUT/logs" || die "cannot create $OUT"
rm -f "$OUT"/wrk/* "$OUT"/logs/*
TMP=$(mktemp -d "${TMPDIR:-/tmp}/launch-reload.XXXXXX") || die "mktemp"
export LAUNCH_HOME="$TMP/launch-home"; mkdir -m 700 "$LAUNCH_HOME"
export PM2_HOME="$TMP/pm2home"

# ---------------------------------------------------------------- requirements
command -v node >/dev/null || die "node is required (the app is examples/hello-node/app.js)"
[[ -x $ROOT/bin/launch ]] || (cd "$ROOT" && make build >&2) || die "make build failed"
cp -f "$ROOT/bin/launch" "$TMP/launch" || die "cannot copy bin/launch"
LAUNCH="$TMP/launch"
if ! command -v wrk >/dev/null; then
  log "installing wrk via apt-get"
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null || die "could not install wrk"
fi
HAVE_PM2=0
if [[ ! -x $PM2BIN && -x $PEER/setup.sh ]]; then
  log "pm2 missing under $PEER_WORK: running $PEER/setup.sh"
  PEER_WORK="$PEER_WORK" "$PEER/setup.sh" >"$OUT/logs/peer-setup.log" 2>&1 || log "peer setup failed (see $OUT/logs/peer-setup.log)"
fi
[[ -x $PM2BIN && ${NO_PM2:-0} != 1 ]] && HAVE_PM2=1
(( HAVE_PM2 )) || log "NOTE: no pm2 ($PEER/setup.sh not found or it failed): the PM2 column is SKIPPED"
HAMMER=""
if [[ -d $PEER/go/hammer ]] && (cd "$PEER/go" && go build -o "$TMP/hammer" ./hammer) 2>"$OUT/logs/hammer-build.log"; then HAMMER="$TMP/hammer"
elif [[ -x $PEER_WORK/bin/hammer ]]; then HAMMER="$PEER_WORK/bin/hammer"
else log "NOTE: no hammer ($PEER/go/hammer): the stranded-connection check is SKIPPED"; fi
pm2() { (cd "$(dirname "$APPJS")" && "$PM2BIN" "$@"); }

WT=2; SRV_PIN=(); LG_PIN=(); HENV=()
if [[ $PIN == 1 ]]; then
  WT=1; SRV_PIN=(taskset -c 0); LG_PIN=(taskset -c 1); HENV=(GOMAXPROCS=1)
fi

# ---------------------------------------------------------------- cleanup
MASTER=""; PM2_UP=0; LOADPIDS=(); WORKERS=()
cleanup() {
  local p
  for p in "${LOADPIDS[@]}"; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
  stop_pid "$MASTER" 15; MASTER=""
  if (( PM2_UP )); then pm2 kill >/dev/null 2>&1; PM2_UP=0; fi
  for p in "${WORKERS[@]}"; do
    alive "$p" && [[ $(ps -o comm= -p "$p") == node ]] && kill -KILL "$p" 2>/dev/null
  done
  LOADPIDS=(); WORKERS=()
}
trap 'cleanup; rm -rf "$TMP"' EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- helpers
wait_http() { local i=0; while (( i < ${2:-20} * 10 )); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" == 200 ]] && return 0; sleep 0.1; i=$((i + 1)); done; return 1; }
stats() { sort -g | awk '{a[NR]=$1} END { if (NR==0) {print "NA NA NA"; exit}
  m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print m, a[1], a[NR] }'; }
pids_of() { # SERVER -> worker pids, sorted
  if [[ $1 == launch ]]; then "$LAUNCH" ls web -o json --name reloadbench 2>/dev/null | node -e '
    let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).map(w=>w.pid).sort().join(" "))})'
  else pm2 jlist 2>/dev/null | node -e '
    let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).filter(p=>p.name==="web").map(p=>p.pid).sort().join(" "))})'
  fi
}
do_reload() { # SERVER LOGFILE -> 0 if the reload replaced every worker
  if [[ $1 == launch ]]; then
    "$LAUNCH" reload web --name reloadbench -o json >"$TMP/rl.json" 2>&1; local rc=$?
    cat "$TMP/rl.json" >> "$2"
    (( rc == 0 )) && tr -d ' \n' < "$TMP/rl.json" | grep -q '"ok":true,.*"replaced":2'
  else
    pm2 reload web >>"$2" 2>&1
  fi
  # launch: exit 0, ok and both replaced; PM2: exit 0
}

start_servers() {
  port_busy $LPORT && die "port $LPORT is in use"
  cat > "$TMP/web.yaml" <<EOF
apps:
  - name: web
    script: $APPJS
    instances: 2
    listen: ["127.0.0.1:$LPORT"]
    wait_ready: true
EOF
  [[ ${START_NICE:-0} != 0 ]] && echo "    start_nice: $START_NICE" >> "$TMP/web.yaml"
  "${SRV_PIN[@]}" "$LAUNCH" --name reloadbench "$TMP/web.yaml" >"$OUT/logs/launch.log" 2>&1 &
  MASTER=$!
  local i=0
  until grep -q "ready (2 of 2 workers online)" "$OUT/logs/launch.log" 2>/dev/null; do
    alive "$MASTER" && (( i < 200 )) || { tail -20 "$OUT/logs/launch.log" >&2; die "launch did not get ready"; }
    sleep 0.1; i=$((i + 1))
  done
  wait_http "http://127.0.0.1:$LPORT/" || die "launch: no 200 on $LPORT"
  SERVERS=(launch)
  if (( HAVE_PM2 )); then
    port_busy $PPORT && die "port $PPORT is in use"
    "${SRV_PIN[@]}" "$PM2BIN" ping >/dev/null 2>&1; PM2_UP=1   # boots the daemon (pinned with PIN=1)
    HOST=127.0.0.1 PORT=$PPORT pm2 start "$APPJS" --name web -i 2 >"$OUT/logs/pm2-start.log" 2>&1 || die "pm2 start failed"
    wait_http "http://127.0.0.1:$PPORT/" || die "pm2: no 200 on $PPORT"
    SERVERS+=(pm2)
  fi
  sleep 1
}

RUNS_TSV="$OUT/runs.tsv"
printf 'round\tserver\tload\tphase\treq_per_s\tp99_ms\trequests\terrors\tnon2xx\treloads\treload_s\tpids_ok\tdetail\n' > "$RUNS_TSV"

# reload_loop SERVER TAG T0 -> appends one wall time per reload to $TMP/TAG.times; sets RL_OK
reload_loop() {
  local srv=$1 tag=$2 t0=$3 last=1.5 a b before after ok=1 n=0
  before=$(pids_of "$srv")
  sleep "$(awk -v t0="$t0" -v now="$EPOCHREALTIME" 'BEGIN{d=t0+1-now; print (d>0)?d:0}')"
  : > "$TMP/$tag.times"
  while awk -v t0="$t0" -v now="$EPOCHREALTIME" -v l="$last" -v w="$WIN_S" 'BEGIN{exit !(now - t0 + l < w - 0.5)}' || (( n == 0 )); do
    a=$EPOCHREALTIME
    do_reload "$srv" "$OUT/logs/$tag.reload.log" || { ok=0; log "$tag: reload $((n + 1)) failed (see $OUT/logs/$tag.reload.log)"; }
    b=$EPOCHREALTIME
    last=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b-a}')
    echo "$last" >> "$TMP/$tag.times"; n=$((n + 1))
  done
  # (pids are read before and after the window only: `pm2 jlist` costs ~0.3 s of CPU)
  after=$(pids_of "$srv")
  for p in $before; do [[ " $after " == *" $p "* ]] && { ok=0; log "$tag: pid $p survived $n reloads ($before -> $after)"; }; done
  [[ $(wc -w <<<"$after") == 2 ]] || { ok=0; log "$tag: $(wc -w <<<"$after") workers after the reloads"; }
  WORKERS+=($after)
  RL_OK=$ok
}

# spawn_loop TAG T0: the control for the reload windows: from t = 1 s, cycles
# of two start/stop of a separate `node app.js` on an unused port (no
# traffic reaches it) — the CPU a reload spends starting and draining two
# node workers, without moving any connection. Same cadence rule as
# reload_loop. Sets SP_N (cycles).
spawn_loop() {
  local tag=$1 t0=$2 last=1.5 a b j i sp n=0
  sleep "$(awk -v t0="$t0" -v now="$EPOCHREALTIME" 'BEGIN{d=t0+1-now; print (d>0)?d:0}')"
  while awk -v t0="$t0" -v now="$EPOCHREALTIME" -v l="$last" -v w="$WIN_S" 'BEGIN{exit !(now - t0 + l < w - 0.5)}' || (( n == 0 )); do
    a=$EPOCHREALTIME
    for j in 1 2; do
      : > "$TMP/spawn.log"
      HOST=127.0.0.1 PORT=0 "${SRV_PIN[@]}" node "$APPJS" >"$TMP/spawn.log" 2>&1 &
      sp=$!; WORKERS+=("$sp"); i=0
      until grep -q listening "$TMP/spawn.log" 2>/dev/null || (( i > 500 )) || ! alive "$sp"; do sleep 0.01; i=$((i + 1)); done
      stop_pid "$sp" 5
    done
    b=$EPOCHREALTIME; n=$((n + 1))
    last=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b-a}')
  done
  SP_N=$n
}

measure() { # ROUND SERVER
  local r=$1 srv=$2 port url load hdr tag f rps p99 err n2 req det t0 wp times
  port=$LPORT; [[ $srv == pm2 ]] && port=$PPORT
  url="http://127.0.0.1:$port/"
  wait_quiet
  timeout 10 "${LG_PIN[@]}" wrk -t$WT -c64 -d1s "$url" >/dev/null 2>&1
  for load in keepalive close; do
    hdr=(); [[ $load == close ]] && hdr=(-H 'Connection: close')
    tag="r${r}-$srv-$load-steady"; f="$OUT/wrk/$tag.txt"
    timeout $((STEADY_S + 15)) "${LG_PIN[@]}" wrk -t$WT -c64 -d"${STEADY_S}s" --latency "${hdr[@]}" "$url" >"$f" 2>&1
    read -r rps p99 err n2 req det < <(wrk_parse "$f")
    printf '%s\t%s\t%s\tsteady\t%s\t%s\t%s\t%s\t%s\t0\t-\t-\t%s\n' "$r" "$srv" "$load" "$rps" "$p99" "$req" "$err" "$n2" "$det" >> "$RUNS_TSV"
    log "r$r $srv $load steady: $rps req/s, p99 $p99 ms, errors $err, non2xx $n2"
    tag="r${r}-$srv-$load-spawn"; f="$OUT/wrk/$tag.txt"
    t0=$EPOCHREALTIME
    timeout $((WIN_S + 15)) "${LG_PIN[@]}" wrk -t$WT -c64 -d"${WIN_S}s" --latency "${hdr[@]}" "$url" >"$f" 2>&1 &
    wp=$!; LOADPIDS+=("$wp")
    spawn_loop "$tag" "$t0"
    wait "$wp"
    read -r rps p99 err n2 req det < <(wrk_parse "$f")
    printf '%s\t%s\t%s\tspawn\t%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t%s\n' "$r" "$srv" "$load" "$rps" "$p99" "$req" "$err" "$n2" "$SP_N" "$det" >> "$RUNS_TSV"
    log "r$r $srv $load spawn-only control ($SP_N cycles): $rps req/s, p99 $p99 ms, errors $err"
    tag="r${r}-$srv-$load-reload"; f="$OUT/wrk/$tag.txt"
    t0=$EPOCHREALTIME
    timeout $((WIN_S + 15)) "${LG_PIN[@]}" wrk -t$WT -c64 -d"${WIN_S}s" --latency "${hdr[@]}" "$url" >"$f" 2>&1 &
    wp=$!; LOADPIDS+=("$wp")
    reload_loop "$srv" "$tag" "$t0"
    wait "$wp"
    read -r rps p99 err n2 req det < <(wrk_parse "$f")
    times=$(paste -sd, "$TMP/$tag.times")
    printf '%s\t%s\t%s\treload\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$srv" "$load" "$rps" "$p99" "$req" "$err" "$n2" "$(wc -l < "$TMP/$tag.times")" "$times" "$RL_OK" "$det" >> "$RUNS_TSV"
    log "r$r $srv $load reloads ($times s): $rps req/s, p99 $p99 ms, errors $err ($det), non2xx $n2, pids ok $RL_OK"
  done
  if [[ -n $HAMMER ]]; then
    tag="r${r}-$srv-hammer-reload"; f="$OUT/wrk/$tag.json"
    t0=$EPOCHREALTIME
    env "${HENV[@]}" timeout $((WIN_S + 15)) "${LG_PIN[@]}" "$HAMMER" -addr "127.0.0.1:$port" -c 64 -d "${WIN_S}s" -keepalive=false >"$f" 2>"$f.err" &
    wp=$!; LOADPIDS+=("$wp")
    reload_loop "$srv" "$tag" "$t0"
    wait "$wp"
    local total ok2 errs non2 hrps p99h kinds tmo
    read -r total ok2 errs non2 hrps p99h tmo kinds < <(node -e '
      const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
      const k=r.error_kinds||{}; const d=Object.entries(k).map(([a,b])=>a+"="+b).join(",")||"none";
      console.log(r.total,r.ok_2xx,r.errors,r.non_2xx,r.req_per_sec.toFixed(0),r.p99_ms,k.timeout||0,d)' "$f" 2>/dev/null || echo "0 0 0 0 0 0 0 unreadable")
    times=$(paste -sd, "$TMP/$tag.times")
    printf '%s\t%s\thammer-close\treload\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\ttimeouts=%s;%s\n' "$r" "$srv" "$hrps" "$p99h" "$total" "$errs" "$non2" "$(wc -l < "$TMP/$tag.times")" "$times" "$RL_OK" "$tmo" "$kinds" >> "$RUNS_TSV"
    log "r$r $srv hammer new-conn reloads ($times s): $hrps req/s, errors $errs ($kinds), of which 2 s timeouts (stranded) $tmo"
  fi
}

# ---------------------------------------------------------------- run
T0=$(date +%s); LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
start_servers
log "launch master $MASTER, workers $(pids_of launch)$( (( HAVE_PM2 )) && echo "; pm2 daemon $(cat "$PM2_HOME/pm2.pid"), workers $(pids_of pm2)")"
WORKERS+=($(pids_of launch)); (( HAVE_PM2 )) && WORKERS+=($(pids_of pm2))
for r in $(seq 1 "$RUNS"); do
  n=${#SERVERS[@]}
  for k in $(seq 0 $((n - 1))); do measure "$r" "${SERVERS[$(( (k + r) % n ))]}"; done
done
stop_pid "$MASTER" 15; rc=$?; MASTER=""
(( rc == 0 )) || log "NOTE: launch master exited with status $rc"
T1=$(date +%s)

# ---------------------------------------------------------------- report
col() { awk -F'\t' -v s="$1" -v l="$2" -v ph="$3" -v k="$4" '$2==s && $3==l && $4==ph {print $k}' "$RUNS_TSV"; }
med() { col "$@" | stats | cut -d' ' -f1; }
rng() { col "$@" | stats | awk '{ if ($2=="NA") print "–"; else print $2 "–" $3 }'; }
# failures per reload, per run
fpr() { awk -F'\t' -v s="$1" -v l="$2" '$2==s && $3==l && $4=="reload" { printf "%.2f\n", ($8+$9)/($10>0?$10:1) }' "$RUNS_TSV"; }
fails() { awk -F'\t' -v s="$1" -v l="$2" '$2==s && $3==l && $4=="reload" { printf "%s%d", sep, $8+$9; sep=", " }' "$RUNS_TSV"; }
totreq() { awk -F'\t' -v s="$1" -v l="$2" '$2==s && $3==l && $4=="reload" { e+=$8+$9; n+=$7; r+=$10 } END { printf "%d / %d requests, %d reloads", e, n, r }' "$RUNS_TSV"; }
p99ratio() { # SERVER LOAD [NUM_PHASE [DEN_PHASE]] (default reload ÷ steady)
  awk -F'\t' -v s="$1" -v l="$2" -v nu="${3:-reload}" -v de="${4:-steady}" '$2==s && $3==l { if ($4==de) st[$1]=$6; if ($4==nu) rl[$1]=$6 } END { for (r in rl) if (st[r]>0) printf "%.3f\n", rl[r]/st[r] }' "$RUNS_TSV"; }
rtimes() { awk -F'\t' -v s="$1" '$2==s && $4=="reload" { n=split($11,a,","); for (i=1;i<=n;i++) print a[i] }' "$RUNS_TSV"; }
stranded() { awk -F'\t' -v s="$1" '$2==s && $3=="hammer-close" { split($13,a,";"); sub("timeouts=","",a[1]); printf "%.2f\n", a[1]/($10>0?$10:1) }' "$RUNS_TSV"; }
strandedraw() { awk -F'\t' -v s="$1" '$2==s && $3=="hammer-close" { split($13,a,";"); sub("timeouts=","",a[1]); printf "%s%s", sep, a[1]; sep=", " }' "$RUNS_TSV"; }
hfpr() { awk -F'\t' -v s="$1" '$2==s && $3=="hammer-close" { printf "%.2f\n", ($8+$9)/($10>0?$10:1) }' "$RUNS_TSV"; }
pidsok() { awk -F'\t' -v s="$1" '$4=="reload" && $2==s && $12!="1" {bad++} END{print bad ? "**no** (" bad " windows)" : "yes"}' "$RUNS_TSV"; }
f2() { awk -v v="$1" 'BEGIN{ if (v==""||v=="NA") print "–"; else printf "%.2f", v }'; }
f0() { awk -v v="$1" 'BEGIN{ if (v==""||v=="NA") print "–"; else printf "%.0f", v }'; }
rat() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a==""||b==""||a=="NA"||b=="NA"||a+0==0) print "–"; else printf "%.2f×", b/a }'; }
has() { (( HAVE_PM2 )) && echo "$1" || echo "–"; }
{
  echo
  echo "## Rolling reload under load: launch vs PM2 (examples/hello-node/app.js, 2 workers)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), $("$LAUNCH" version 2>/dev/null | head -1), node $(node --version), pm2 $( (( HAVE_PM2 )) && node -p "require('$PEER_WORK/node_modules/pm2/package.json').version" || echo none), $(wrk --version 2>&1 | head -1 | awk '{print "wrk", $2}'). RUNS=$RUNS rounds, medians (range). Load: wrk -t$WT -c64, steady ${STEADY_S} s vs ${WIN_S} s windows with reloads back to back from t = 1 s. $( [[ $PIN == 1 ]] && echo "Pinned: servers on CPU 0, load generator on CPU 1." || echo "Not pinned.") Load average before/after: $LOADAVG0 / $(cut -d' ' -f1-3 /proc/loadavg); measurements started on a machine busier than $QUIET_PCT% (after waiting ${QUIET_WAIT} s): $NOISY of $(( RUNS * ${#SERVERS[@]} )). Took $((T1 - T0)) s. launch's start_nice: ${START_NICE:-0}."
  echo
  echo "| load | metric | launch | PM2 cluster | PM2 / launch |"
  echo "| --- | --- | ---: | ---: | ---: |"
  for l in keepalive close; do
    L=$l; [[ $l == close ]] && L="new conn. (Connection: close)"
    lf=$(fpr launch $l | stats | cut -d' ' -f1); pf=$(fpr pm2 $l | stats | cut -d' ' -f1)
    echo "| $L | failed requests per reload, median (per run: failures) | **$(f2 "$lf")** ($(fails launch $l)) | $(has "**$(f2 "$pf")** ($(fails pm2 $l))") | – |"
    echo "| $L | failures / requests in reload windows | $(totreq launch $l) | $(has "$(totreq pm2 $l)") | – |"
    a=$(med launch $l steady 6); b=$(med pm2 $l steady 6)
    echo "| $L | p99 ms, steady | $(f2 "$a") ($(rng launch $l steady 6)) | $(has "$(f2 "$b") ($(rng pm2 $l steady 6))") | $(has "$(rat "$a" "$b")") |"
    a=$(med launch $l reload 6); b=$(med pm2 $l reload 6)
    echo "| $L | p99 ms, during reloads | $(f2 "$a") ($(rng launch $l reload 6)) | $(has "$(f2 "$b") ($(rng pm2 $l reload 6))") | $(has "$(rat "$a" "$b")") |"
    a=$(med launch $l spawn 6); b=$(med pm2 $l spawn 6)
    echo "| $L | p99 ms, control: 2 node start/stops per cycle, no reload | $(f2 "$a") ($(rng launch $l spawn 6)) | $(has "$(f2 "$b") ($(rng pm2 $l spawn 6))") | $(has "$(rat "$a" "$b")") |"
    a=$(p99ratio launch $l spawn | stats); b=$(p99ratio pm2 $l spawn | stats)
    echo "| $L | p99 control ÷ steady p99 (median of per-round ratios, range) | $(f2 "${a%% *}") ($(awk '{print $2 "–" $3}' <<<"$a")) | $(has "$(f2 "${b%% *}") ($(awk '{print $2 "–" $3}' <<<"$b"))") | – |"
    a=$(p99ratio launch $l reload spawn | stats); b=$(p99ratio pm2 $l reload spawn | stats)
    echo "| $L | p99 during reloads ÷ p99 control (median of per-round ratios, range) | $(f2 "${a%% *}") ($(awk '{print $2 "–" $3}' <<<"$a")) | $(has "$(f2 "${b%% *}") ($(awk '{print $2 "–" $3}' <<<"$b"))") | – |"
    a=$(p99ratio launch $l | stats); b=$(p99ratio pm2 $l | stats)
    echo "| $L | p99 during reloads ÷ steady p99 (median of per-round ratios, range) | **$(f2 "${a%% *}")** ($(awk '{print $2 "–" $3}' <<<"$a")) | $(has "$(f2 "${b%% *}") ($(awk '{print $2 "–" $3}' <<<"$b"))") | – |"
    a=$(med launch $l steady 5); b=$(med pm2 $l steady 5)
    echo "| $L | req/s, steady | $(f0 "$a") | $(has "$(f0 "$b")") | $(has "$(rat "$a" "$b")") |"
    a=$(med launch $l reload 5); b=$(med pm2 $l reload 5)
    echo "| $L | req/s, during reloads | $(f0 "$a") | $(has "$(f0 "$b")") | $(has "$(rat "$a" "$b")") |"
    a=$(med launch $l reload 10); b=$(med pm2 $l reload 10)
    echo "| $L | reloads per ${WIN_S} s window | $(f0 "$a") | $(has "$(f0 "$b")") | – |"
  done
  if [[ -n $HAMMER ]]; then
    a=$(stranded launch | stats | cut -d' ' -f1); b=$(stranded pm2 | stats | cut -d' ' -f1)
    echo "| new conn. (hammer, 2 s timeout) | stranded connections (accepted, never answered: 2 s timeouts) per reload, median (per run: count) | **$(f2 "$a")** ($(strandedraw launch)) | $(has "**$(f2 "$b")** ($(strandedraw pm2))") | – |"
    a=$(hfpr launch | stats | cut -d' ' -f1); b=$(hfpr pm2 | stats | cut -d' ' -f1)
    echo "| new conn. (hammer) | all failed requests per reload, median | $(f2 "$a") | $(has "$(f2 "$b")") | – |"
  fi
  a=$(rtimes launch | stats); b=$(rtimes pm2 | stats)
  echo "| all | wall time of one full reload (2 workers, under load), s, median (range) | **$(f2 "${a%% *}")** ($(awk '{print $2 "–" $3}' <<<"$a")) | $(has "**$(f2 "${b%% *}")** ($(awk '{print $2 "–" $3}' <<<"$b"))") | $(has "$(rat "${a%% *}" "${b%% *}")") |"
  echo "| all | every reload replaced both workers | $(pidsok launch) | $(has "$(pidsok pm2)") | – |"
  echo
  lf=$(awk -F'\t' '$2=="launch" && $4=="reload" {s+=$8+$9} END{print s+0}' "$RUNS_TSV")
  lr=$( { p99ratio launch keepalive; p99ratio launch close; } | sort -g | tail -1)
  lm=$( { p99ratio launch keepalive; p99ratio launch close; } | stats | cut -d' ' -f1)
  echo "| target (issue \"rolling reload\") | measured | met? |"
  echo "| --- | --- | --- |"
  echo "| launch: 0 failed requests in every run | $lf failures in all launch reload windows | $( (( lf == 0 )) && echo yes || echo "**no**") |"
  echo "| launch: p99 during reloads ≤ 2× steady p99 | worst per-round ratio $(f2 "$lr") (median over both loads $(f2 "$lm")) | $(awk -v r="$lr" 'BEGIN{ if (r=="") print "?"; else print (r<=2)?"yes":"**no**" }') |"
  echo
  echo "Failures: wrk socket errors (connect/read/write/timeout) + non-2xx; kinds per run in $RUNS_TSV (column detail). Reload wall time: the CLI command (\`bin/launch reload web\` / \`pm2 reload web\`), start to exit, while the load runs. Raw wrk and hammer outputs: $OUT/wrk; logs: $OUT/logs."
} | tee "$OUT/report.md"
