#!/usr/bin/env bash
# bench/control.sh: what does launch's master cost while it supervises 1, 50
# and 200 workers that do nothing, and how fast does `launch ls` answer —
# compared with PM2's daemon ("God") supervising the same processes.
# `make bench-control` runs it (after `make build`). It takes about 3 min
# (about 1 min per count; PM2 needs ~15 s to start 200 processes).
#
#   COUNTS="1 50 200" IDLE_S=10 LS_N=30 BENCH_OUT=/tmp/launch-bench bench/control.sh
#
# The app: $OUT/sleep.sh (`exec sleep 100000`), the same file for both:
#   launch  bin/launch -i N sleep.yaml: exec_mode: fork, ready: delay:100ms,
#           a private LAUNCH_HOME (a temp dir), master name ctlN
#   PM2     pm2 start sleep.sh -i N (PM2 runs a non-JS script in fork mode
#           with bash, so N fork processes), PM2_HOME in a temp dir; pm2@7.0.4
#           from the peer setup ($PEER/setup.sh, PEER default: ../shared/peer
#           next to the repo, PEER_WORK default /tmp/peer). Without it the PM2
#           columns are skipped, with a message.
# For each N, launch and PM2 run side by side (idle: they do not disturb each
# other) and are measured in the same windows:
#   RSS   VmRSS of the master / daemon from /proc/PID/status after SETTLE_S
#         (5 s); PSS (Pss from /proc/PID/smaps_rollup) next to it: RSS counts
#         every resident page the process maps, shared ones (libc, node's
#         binary) in full; PSS divides shared pages by the number of sharers.
#         launch is a static binary, so its RSS ≈ PSS.
#   CPU   utime+stime deltas of the master / daemon (/proc/PID/stat, not its
#         children) over IDLE_S (10 s) of idle, both processes in the same
#         window, as % of one core. launch samples its workers every 1 s
#         (the default sample_interval), PM2 its own way.
#   ls    LS_N (30) runs of `bin/launch ls -o json --name ctlN` and of
#         `pm2 jlist`, alternating, wall clock per run (bash
#         $EPOCHREALTIME around the command: includes process start),
#         median and p95; plus the raw socket round trip
#         `curl --unix-socket $LAUNCH_HOME/ctlN.sock http://launch/v1/ls`
#         (curl's time_total, without curl's own start), when curl exists.
#         Every answer is checked to list N processes.
# Nothing is pinned (no load runs; latency is process start + one RPC), but
# the machine may be shared: before the ls loop the script waits (at most
# QUIET_WAIT, 60 s) until the machine is at most QUIET_PCT (15) % busy; the
# load average is printed with the table. The CPU figures are per process
# and do not depend on it.
# Targets (issue "control plane"): master RSS < 30 MB at 200 workers, idle
# CPU < 2% of one core at 200 workers, `launch ls` < 50 ms.
# Cleanup: the launch master is stopped by PID (SIGTERM; its workers stop with
# it), PM2 with `pm2 kill` on its own PM2_HOME; a trap on EXIT does both and
# SIGKILLs any `sleep` worker pid it recorded that is still alive.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COUNTS="${COUNTS:-1 50 200}"
QUIET_PCT="${QUIET_PCT:-15}"; QUIET_WAIT="${QUIET_WAIT:-60}"; NOISY=0
IDLE_S="${IDLE_S:-10}"; LS_N="${LS_N:-30}"; SETTLE_S="${SETTLE_S:-5}"
OUT="${BENCH_OUT:-/tmp/launch-bench}/control"
PEER="${PEER:-$ROOT/../shared/peer}"
[[ -d $PEER ]] || PEER=/work/shared/peer
PEER_WORK="${PEER_WORK:-/tmp/peer}"
PM2BIN="$PEER_WORK/node_modules/.bin/pm2"
HZ=$(getconf CLK_TCK)

source "$ROOT/bench/lib.sh" # log, die, alive, stop_pid, port_busy, wait_quiet, wrk_parse

mkdir -p "$OUT" || die "cannot create $OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/launch-control.XXXXXX") || die "mktemp"
export LAUNCH_HOME="$TMP/launch-home"; mkdir -m 700 "$LAUNCH_HOME"
export PM2_HOME="$TMP/pm2home"

[[ -x $ROOT/bin/launch ]] || (cd "$ROOT" && make build >&2) || die "make build failed"
cp -f "$ROOT/bin/launch" "$TMP/launch" || die "cannot copy bin/launch"
LAUNCH="$TMP/launch"   # a snapshot: a concurrent `make build` cannot swap it
HAVE_PM2=0
if command -v node >/dev/null; then
  if [[ ! -x $PM2BIN && -x $PEER/setup.sh ]]; then
    log "pm2 missing under $PEER_WORK: running $PEER/setup.sh"
    PEER_WORK="$PEER_WORK" "$PEER/setup.sh" >"$OUT/peer-setup.log" 2>&1 || log "peer setup failed (see $OUT/peer-setup.log)"
  fi
  [[ -x $PM2BIN ]] && HAVE_PM2=1
fi
(( HAVE_PM2 )) || log "NOTE: no pm2 (need node and $PEER/setup.sh, or pm2 under $PEER_WORK): PM2 columns SKIPPED"
HAVE_CURL=0; command -v curl >/dev/null && HAVE_CURL=1
pm2() { (cd "$TMP" && "$PM2BIN" "$@"); }

# ---------------------------------------------------------------- cleanup
MASTERS=(); SLEEPERS=(); PM2_UP=0
cleanup() {
  local p
  for p in "${MASTERS[@]}"; do stop_pid "$p" 15; done
  if (( PM2_UP )); then pm2 kill >/dev/null 2>&1; PM2_UP=0; fi
  for p in "${SLEEPERS[@]}"; do
    alive "$p" && [[ $(ps -o comm= -p "$p") == sleep ]] && { kill -KILL "$p" 2>/dev/null; }
  done
  MASTERS=(); SLEEPERS=()
}
trap 'cleanup; rm -rf "$TMP"' EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- helpers
ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' | grep . || echo 0; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null; }
pss_kb() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null; }
# stats: numbers on stdin -> "median p95 min max"
stats() { sort -g | awk '{a[NR]=$1} END { if (NR==0) {print "NA NA NA NA"; exit}
  m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; k = int(0.95*NR + 0.999999); if (k<1) k=1; print m, a[k], a[1], a[NR] }'; }
mib() { awk -v k="$1" 'BEGIN{ if (k=="" || k=="NA") print "–"; else printf "%.1f", k/1024 }'; }
ms() { awk -v v="$1" 'BEGIN{ if (v==""||v=="NA") print "–"; else printf "%.1f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a==""||b==""||a=="NA"||b=="NA"||a+0==0) print "–"; else printf "%.2f×", b/a }'; }

printf '#!/bin/sh\n# a worker that does nothing\nexec sleep 100000\n' > "$TMP/sleep.sh"; chmod +x "$TMP/sleep.sh"
cat > "$TMP/sleep.yaml" <<EOF
apps:
  - name: sleeper
    script: $TMP/sleep.sh
    exec_mode: fork
    ready: delay:100ms
EOF

RES="$OUT/results.tsv"
printf 'who\tn\tready_s\trss_kb\tpss_kb\tcpu_pct\tls_med_ms\tls_p95_ms\tls_min_ms\tls_max_ms\traw_med_ms\traw_p95_ms\tlisted\n' > "$RES"

T0=$(date +%s); LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $COUNTS; do
  log "=== $n workers ==="
  name="ctl$n"; lg="$OUT/launch-$n.log"
  t0=$EPOCHREALTIME
  "$LAUNCH" -i "$n" --name "$name" "$TMP/sleep.yaml" >"$lg" 2>&1 &
  mp=$!; MASTERS+=("$mp")
  i=0; until grep -q "ready ($n of $n workers online)" "$lg" 2>/dev/null; do
    alive "$mp" && (( i < 600 )) || { log "launch did not get ready with $n workers:"; tail -20 "$lg" >&2; exit 1; }
    sleep 0.05; i=$((i + 1))
  done
  l_ready=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}')
  mapfile -t w < <(ps --ppid "$mp" -o pid= | awk '{print $1}'); SLEEPERS+=("${w[@]}")
  log "launch master $mp: $n workers ready in ${l_ready}s"
  god=""; p_ready=NA
  if (( HAVE_PM2 )); then
    t0=$EPOCHREALTIME
    pm2 start "$TMP/sleep.sh" --name sleeper -i "$n" >"$OUT/pm2-start-$n.log" 2>&1; PM2_UP=1
    god=$(cat "$PM2_HOME/pm2.pid" 2>/dev/null)
    i=0; until [[ $(pm2 jlist 2>/dev/null | grep -o '"status":"online"' | wc -l) -ge $n ]]; do
      (( i < 120 )) || { log "pm2: not $n online after 60 s"; break; }
      sleep 0.5; i=$((i + 1))
    done
    p_ready=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}')
    [[ -n $god ]] && { mapfile -t w < <(ps --ppid "$god" -o pid= | awk '{print $1}'); SLEEPERS+=("${w[@]}"); }
    log "pm2 daemon $god: $n processes online in ${p_ready}s"
  fi
  sleep "$SETTLE_S"
  l_rss=$(rss_kb "$mp"); l_pss=$(pss_kb "$mp")
  p_rss=NA; p_pss=NA; [[ -n $god ]] && { p_rss=$(rss_kb "$god"); p_pss=$(pss_kb "$god"); }
  # idle CPU: one window for both
  a0=$(ticks "$mp"); b0=0; [[ -n $god ]] && b0=$(ticks "$god"); s0=$EPOCHREALTIME
  sleep "$IDLE_S"
  a1=$(ticks "$mp"); b1=0; [[ -n $god ]] && b1=$(ticks "$god"); s1=$EPOCHREALTIME
  l_cpu=$(awk -v d=$((a1 - a0)) -v hz="$HZ" -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", d/hz/(b-a)*100}')
  p_cpu=NA; [[ -n $god ]] && p_cpu=$(awk -v d=$((b1 - b0)) -v hz="$HZ" -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", d/hz/(b-a)*100}')
  log "idle ${IDLE_S}s: launch $((a1 - a0)) ticks ($l_cpu%), pm2 $((b1 - b0)) ticks ($p_cpu%)"
  # ls latency, alternating launch / pm2 / curl
  wait_quiet
  : > "$TMP/l.ms"; : > "$TMP/p.ms"; : > "$TMP/c.ms"; l_list=""; p_list=""
  for k in $(seq 1 "$LS_N"); do
    t0=$EPOCHREALTIME; "$LAUNCH" ls -o json --name "$name" >"$TMP/ls.json" 2>&1; t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", (b-a)*1000}' >> "$TMP/l.ms"
    if (( HAVE_PM2 )); then
      t0=$EPOCHREALTIME; pm2 jlist >"$TMP/jl.json" 2>/dev/null; t1=$EPOCHREALTIME
      awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", (b-a)*1000}' >> "$TMP/p.ms"
    fi
    if (( HAVE_CURL )); then
      curl -s --max-time 5 --unix-socket "$LAUNCH_HOME/$name.sock" -o /dev/null -w '%{time_total}\n' http://launch/v1/ls \
        | awk '{printf "%.3f\n", $1*1000}' >> "$TMP/c.ms"
    fi
  done
  read -r lm lp lmin lmax < <(stats < "$TMP/l.ms")
  read -r cm cp _ _ < <(stats < "$TMP/c.ms")
  read -r pm pp pmin pmax < <(stats < "$TMP/p.ms")
  # the last answers must list every process
  l_list=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).filter(w=>w.state==="online").length)' "$TMP/ls.json" 2>/dev/null || grep -o '"state": *"online"' "$TMP/ls.json" | wc -l)
  [[ $l_list == "$n" ]] || log "WARNING: launch ls listed $l_list online workers, want $n"
  if (( HAVE_PM2 )); then
    p_list=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).filter(p=>p.pm2_env.status==="online").length)' "$TMP/jl.json" 2>/dev/null)
    [[ $p_list == "$n" ]] || log "WARNING: pm2 jlist listed $p_list online processes, want $n"
  fi
  printf 'launch\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$l_ready" "$l_rss" "$l_pss" "$l_cpu" "$lm" "$lp" "$lmin" "$lmax" "$cm" "$cp" "$l_list" >> "$RES"
  (( HAVE_PM2 )) && printf 'pm2\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tNA\tNA\t%s\n' "$n" "$p_ready" "$p_rss" "$p_pss" "$p_cpu" "$pm" "$pp" "$pmin" "$pmax" "$p_list" >> "$RES"
  log "launch: RSS $(mib "$l_rss") MiB PSS $(mib "$l_pss") MiB, ls median $lm ms p95 $lp ms, raw $cm ms; pm2: RSS $(mib "$p_rss") MiB, jlist median $pm ms p95 $pp ms"
  stop_pid "$mp" 15; rc=$?
  (( rc == 0 )) || log "NOTE: launch master exited with status $rc"
  if (( HAVE_PM2 )); then pm2 kill >/dev/null 2>&1; PM2_UP=0; fi
  cleanup
done
T1=$(date +%s)

# ---------------------------------------------------------------- report
get() { awk -F'\t' -v w="$1" -v n="$2" -v k="$3" '$1==w && $2==n {print $k}' "$RES"; }
yn() { awk -v v="$1" -v lim="$2" 'BEGIN{ if (v==""||v=="NA") print "?"; else print (v+0 < lim+0) ? "yes" : "**no**" }'; }
{
  echo
  echo "## Control plane: master overhead with N sleeping workers, launch vs PM2"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), $("$LAUNCH" version 2>/dev/null | head -1), pm2 $( (( HAVE_PM2 )) && node -p "require('$PEER_WORK/node_modules/pm2/package.json').version" || echo none), load average before/after: $LOADAVG0 / $(cut -d' ' -f1-3 /proc/loadavg). ls loops started on a machine busier than $QUIET_PCT% (after waiting ${QUIET_WAIT} s): $NOISY of $(wc -w <<<"$COUNTS"). Took $((T1 - T0)) s."
  echo
  echo "| workers | launch master RSS MiB (PSS) | PM2 daemon RSS MiB (PSS) | PM2/launch RSS | launch idle CPU % of a core | PM2 idle CPU % | launch \`ls -o json\` ms median / p95 | raw socket \`curl /v1/ls\` ms median / p95 | \`pm2 jlist\` ms median / p95 | pm2/launch (median) | time to all online: launch / PM2 s |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in $COUNTS; do
    printf '| %s | %s (%s) | %s (%s) | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s | %s / %s |\n' "$n" \
      "$(mib "$(get launch "$n" 4)")" "$(mib "$(get launch "$n" 5)")" "$(mib "$(get pm2 "$n" 4)")" "$(mib "$(get pm2 "$n" 5)")" \
      "$(ratio "$(get launch "$n" 4)" "$(get pm2 "$n" 4)")" "$(get launch "$n" 6)" "$(get pm2 "$n" 6 | grep . || echo –)" \
      "$(ms "$(get launch "$n" 7)")" "$(ms "$(get launch "$n" 8)")" "$(ms "$(get launch "$n" 11)")" "$(ms "$(get launch "$n" 12)")" \
      "$(ms "$(get pm2 "$n" 7)")" "$(ms "$(get pm2 "$n" 8)")" "$(ratio "$(get launch "$n" 7)" "$(get pm2 "$n" 7)")" \
      "$(get launch "$n" 3)" "$(get pm2 "$n" 3 | grep . || echo –)"
  done
  big=$(tr ' ' '\n' <<<"$COUNTS" | sort -n | tail -1)
  echo
  echo "| target (issue \"control plane\") | measured | met? |"
  echo "| --- | --- | --- |"
  echo "| master RSS < 30 MB at $big workers | $(mib "$(get launch "$big" 4)") MiB RSS ($(awk -v k="$(get launch "$big" 4)" 'BEGIN{printf "%.1f", k*1024/1e6}') MB) | $(yn "$(awk -v k="$(get launch "$big" 4)" 'BEGIN{print k*1024/1e6}')" 30) |"
  echo "| idle CPU < 2% of one core at $big workers | $(get launch "$big" 6)% | $(yn "$(get launch "$big" 6)" 2) |"
  for n in $COUNTS; do echo "| \`launch ls\` < 50 ms ($n workers; median / p95) | $(ms "$(get launch "$n" 7)") / $(ms "$(get launch "$n" 8)") ms | $(yn "$(get launch "$n" 8)" 50) (p95) |"; done
  echo
  echo "RSS/PSS: /proc/PID/status VmRSS and smaps_rollup Pss of the master / daemon only, ${SETTLE_S} s after all workers were online. CPU: utime+stime of the master / daemon (not its children) over the same ${IDLE_S} s idle window for both. ls: $LS_N runs each, alternating launch / pm2 / curl; wall clock includes process start. Raw data: $RES."
} | tee "$OUT/report.md"
