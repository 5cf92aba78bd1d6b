#!/usr/bin/env bash
# bench/naive-reload.sh: what a rolling reload costs an app that does NOT
# drain: bin/crashy (examples/crashy) exits at once on SIGTERM, dropping its
# keep-alive connections mid-request, like a naive Node or Go server. Under
# launch with `balance: shared` and `balance: reuseport` (and `balance: proxy`
# once it exists), 2 workers, `ready: notify`, RELOADS reloads per window.
# `make bench-naive-reload` runs it (after `make build`). It takes about 3 min
# with RUNS=3, RELOADS=5.
#
#   RUNS=3 RELOADS=5 GAP_S=1 PIN=0 BENCH_OUT=/tmp/launch-bench bench/naive-reload.sh
#
# Masters run side by side (127.0.0.1:18401 shared, 18402 reuseport, 18403
# proxy), each with a private LAUNCH_HOME. One round measures every mode
# (order rotates between rounds) under four loads, each a window of
# RELOADS × GAP_S + 2 s with a `bin/launch reload web` every GAP_S from t = 1 s:
#   keepalive  wrk -t2 -c64 --latency
#   close      wrk -t2 -c64 --latency -H 'Connection: close' (new TCP
#              connection per request)
#   hka        hammer -c 64 (from the peer: raw HTTP/1.1, no retries, 2 s
#              timeout; it names each failure: reset/EOF on a reused
#              connection before the response, timeout, refused, ...)
#   hnoka      hammer -c 64 -keepalive=false (a 2 s timeout = a connection
#              accepted and never answered: "stranded")
# Failures = wrk's socket errors + non-2xx; hammer's errors. Reported:
# failed requests per reload (median over rounds, and per run), error kinds.
# No target: this is what an app that does not drain should expect (compare
# /work/shared/peer/RESULTS.md §2: PM2 cluster with the same kind of app
# loses about 42 requests per replaced worker with keep-alive).
# PIN=1: masters and workers on CPU 0, load generator on CPU 1 (wrk -t1,
# hammer GOMAXPROCS=1). Default: not pinned.
# hammer is built from $PEER/go (PEER default ../shared/peer next to the
# repo); without it the hammer loads are skipped, with a message.
# Cleanup: every master by PID (SIGTERM; workers stop with it), load
# generators by PID; a trap on EXIT does it.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-3}"; RELOADS="${RELOADS:-5}"; GAP_S="${GAP_S:-1}"; PIN="${PIN:-0}"
QUIET_PCT="${QUIET_PCT:-15}"; QUIET_WAIT="${QUIET_WAIT:-60}"; NOISY=0
OUT="${BENCH_OUT:-/tmp/launch-bench}/naive-reload"
PEER="${PEER:-$ROOT/../shared/peer}"
[[ -d $PEER ]] || PEER=/work/shared/peer
PEER_WORK="${PEER_WORK:-/tmp/peer}"
WIN_S=$(awk -v r="$RELOADS" -v g="$GAP_S" 'BEGIN{printf "%d", r*g + 2.999}')

source "$ROOT/bench/lib.sh" # log, die, alive, stop_pid, port_busy, wait_quiet, wrk_parse

mkdir -p "$OUT/wrk" "$OUT/logs" || die "cannot create $OUT"
rm -f "$OUT"/wrk/* "$OUT"/logs/*
TMP=$(mktemp -d "${TMPDIR:-/tmp}/launch-naive.XXXXXX") || die "mktemp"
export LAUNCH_HOME="$TMP/launch-home"; mkdir -m 700 "$LAUNCH_HOME"

[[ -x $ROOT/bin/launch && -x $ROOT/bin/crashy ]] || (cd "$ROOT" && make build >&2) || die "make build failed"
cp -f "$ROOT/bin/launch" "$ROOT/bin/crashy" "$TMP/" || die "cannot copy binaries"
LAUNCH="$TMP/launch"; CRASHY="$TMP/crashy"
if ! command -v wrk >/dev/null; then
  log "installing wrk via apt-get"
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null || die "could not install wrk"
fi
HAMMER=""
if [[ -d $PEER/go/hammer ]] && (cd "$PEER/go" && go build -o "$TMP/hammer" ./hammer) 2>"$OUT/logs/hammer-build.log"; then HAMMER="$TMP/hammer"
elif [[ -x $PEER_WORK/bin/hammer ]]; then HAMMER="$PEER_WORK/bin/hammer"
else log "NOTE: no hammer ($PEER/go/hammer not found): the hka/hnoka loads are SKIPPED"; fi
HAVE_NODE=0; command -v node >/dev/null && HAVE_NODE=1

WT=2; SRV_PIN=(); LG_PIN=(); HENV=()
if [[ $PIN == 1 ]]; then WT=1; SRV_PIN=(taskset -c 0); LG_PIN=(taskset -c 1); HENV=(GOMAXPROCS=1); fi

# ---------------------------------------------------------------- cleanup
declare -A MASTER PORT
LOADPIDS=(); WORKERS=()
cleanup() {
  local p m
  for p in "${LOADPIDS[@]}"; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
  for m in "${!MASTER[@]}"; do stop_pid "${MASTER[$m]}" 10; done
  for p in "${WORKERS[@]}"; do alive "$p" && [[ $(ps -o comm= -p "$p") == crashy ]] && kill -KILL "$p" 2>/dev/null; done
  MASTER=(); LOADPIDS=(); WORKERS=()
}
trap 'cleanup; rm -rf "$TMP"' EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- helpers
stats() { sort -g | awk '{a[NR]=$1} END { if (NR==0) {print "NA NA NA"; exit}
  m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print m, a[1], a[NR] }'; }
worker_pids() { ps --ppid "$1" -o pid= | awk '{print $1}' | sort -n | xargs; }

start_mode() { # MODE PORT -> 0 if ready
  local mode=$1 port=$2 f="$TMP/$1.yaml" lg="$OUT/logs/launch-$1.log" i=0
  port_busy "$port" && die "port $port is in use"
  cat > "$f" <<EOF
apps:
  - name: web
    script: $CRASHY
    instances: 2
    listen: ["127.0.0.1:$port"]
    balance: $mode
    ready: notify
EOF
  "${SRV_PIN[@]}" "$LAUNCH" --name "naive-$mode" "$f" >"$lg" 2>&1 &
  MASTER[$mode]=$!; PORT[$mode]=$port
  until grep -q "ready (2 of 2 workers online)" "$lg" 2>/dev/null; do
    if ! alive "${MASTER[$mode]}" || (( i > 100 )); then
      wait "${MASTER[$mode]}" 2>/dev/null; local rc=$?
      unset "MASTER[$mode]"
      if [[ $mode == proxy ]]; then
        echo "proxy: not available in this build (launch said: $(grep -v "^launch: master " "$lg" 2>/dev/null | tail -1 | sed "s/^launch: //"); exit status $rc)"
        return 1
      fi
      tail -20 "$lg" >&2; die "launch ($mode) did not get ready"
    fi
    sleep 0.1; i=$((i + 1))
  done
  WORKERS+=($(worker_pids "${MASTER[$mode]}"))
  log "$mode: master ${MASTER[$mode]} on $port, workers $(worker_pids "${MASTER[$mode]}")"
}

RUNS_TSV="$OUT/runs.tsv"
printf 'round\tmode\tload\trequests\tfailures\treloads\treloads_ok\treq_per_s\tp99_ms\tdetail\n' > "$RUNS_TSV"

reloads() { # MODE TAG T0 -> RL_N reloads done, RL_OK of them replaced both workers
  local mode=$1 tag=$2 t0=$3 k at
  RL_N=0; RL_OK=0
  for k in $(seq 1 "$RELOADS"); do
    at=$(awk -v g="$GAP_S" -v k="$k" 'BEGIN{print 1 + (k-1)*g}')
    sleep "$(awk -v t0="$t0" -v at="$at" -v now="$EPOCHREALTIME" 'BEGIN{d=t0+at-now; print (d>0)?d:0}')"
    "$LAUNCH" reload web --name "naive-$mode" -o json >"$TMP/rl.json" 2>&1; local rc=$?
    cat "$TMP/rl.json" >> "$OUT/logs/$tag.reload.log"
    RL_N=$((RL_N + 1))
    (( rc == 0 )) && tr -d ' \n' < "$TMP/rl.json" | grep -q '"ok":true,.*"replaced":2' && RL_OK=$((RL_OK + 1))
  done
  WORKERS+=($(worker_pids "${MASTER[$mode]}"))
}

measure() { # ROUND MODE
  local r=$1 mode=$2 port=${PORT[$2]} load f tag t0 lp req fail rps p99 det
  wait_quiet
  timeout 10 "${LG_PIN[@]}" wrk -t$WT -c64 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1
  for load in keepalive close hka hnoka; do
    [[ $load == h* && -z $HAMMER ]] && continue
    tag="r$r-$mode-$load"; f="$OUT/wrk/$tag.out"
    t0=$EPOCHREALTIME
    case $load in
      keepalive) timeout $((WIN_S + 15)) "${LG_PIN[@]}" wrk -t$WT -c64 -d"${WIN_S}s" --latency "http://127.0.0.1:$port/" >"$f" 2>&1 & ;;
      close) timeout $((WIN_S + 15)) "${LG_PIN[@]}" wrk -t$WT -c64 -d"${WIN_S}s" --latency -H 'Connection: close' "http://127.0.0.1:$port/" >"$f" 2>&1 & ;;
      hka) env "${HENV[@]}" timeout $((WIN_S + 15)) "${LG_PIN[@]}" "$HAMMER" -addr "127.0.0.1:$port" -c 64 -d "${WIN_S}s" >"$f" 2>&1 & ;;
      hnoka) env "${HENV[@]}" timeout $((WIN_S + 15)) "${LG_PIN[@]}" "$HAMMER" -addr "127.0.0.1:$port" -c 64 -d "${WIN_S}s" -keepalive=false >"$f" 2>&1 & ;;
    esac
    lp=$!; LOADPIDS+=("$lp")
    reloads "$mode" "$tag" "$t0"
    wait "$lp"
    if [[ $load == h* ]]; then
      if (( HAVE_NODE )); then
        read -r req fail rps p99 det < <(node -e '
          const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
          const d=Object.entries(r.error_kinds||{}).map(([a,b])=>a+"="+b).join(",")||"-";
          console.log(r.total,r.errors+r.non_2xx,r.req_per_sec.toFixed(0),r.p99_ms,d)' "$f" 2>/dev/null || echo "0 0 0 0 unreadable")
      else
        read -r req fail rps p99 det < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); k=r.get("error_kinds") or {}
print(r["total"], r["errors"]+r["non_2xx"], round(r["req_per_sec"]), r["p99_ms"], ",".join(f"{a}={b}" for a,b in k.items()) or "-")' "$f" 2>/dev/null || echo "0 0 0 0 unreadable")
      fi
    else
      local e n2
      read -r rps p99 e n2 req det < <(wrk_parse "$f"); fail=$((e + n2)); [[ $n2 -gt 0 ]] && det+=",non2xx=$n2"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$load" "$req" "$fail" "$RL_N" "$RL_OK" "$rps" "$p99" "$det" >> "$RUNS_TSV"
    log "r$r $mode $load: $fail failed of $req with $RL_N reloads ($RL_OK replaced both workers) [$det]"
  done
}

# ---------------------------------------------------------------- run
T0=$(date +%s); LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
MODES=()
start_mode shared 18401 && MODES+=(shared)
start_mode reuseport 18402 && MODES+=(reuseport)
PROXY_NOTE=""
if start_mode proxy 18403 > "$TMP/proxy.msg"; then MODES+=(proxy); else PROXY_NOTE=$(cat "$TMP/proxy.msg"); echo "$PROXY_NOTE"; fi
sleep 1
for r in $(seq 1 "$RUNS"); do
  n=${#MODES[@]}
  for k in $(seq 0 $((n - 1))); do measure "$r" "${MODES[$(( (k + r) % n ))]}"; done
done
for m in "${MODES[@]}"; do
  stop_pid "${MASTER[$m]}" 10; rc=$?; unset "MASTER[$m]"
  (( rc == 0 )) || log "NOTE: launch ($m) exited with status $rc"
done
T1=$(date +%s)

# ---------------------------------------------------------------- report
fpr() { awk -F'\t' -v m="$1" -v l="$2" '$2==m && $3==l { printf "%.2f\n", $5/($6>0?$6:1) }' "$RUNS_TSV" | stats | cut -d' ' -f1; }
per() { awk -F'\t' -v m="$1" -v l="$2" '$2==m && $3==l { printf "%s%d", sep, $5; sep=", " }' "$RUNS_TSV"; }
tot() { awk -F'\t' -v m="$1" -v l="$2" '$2==m && $3==l { f+=$5; n+=$4; r+=$6; ok+=$7 } END { printf "%d / %d | %d (%d ok)", f, n, r, ok }' "$RUNS_TSV"; }
kinds() { awk -F'\t' -v m="$1" -v l="$2" '$2==m && $3==l { n=split($10,a,","); for (i=1;i<=n;i++) { split(a[i],kv,"="); if (kv[2]+0>0) c[kv[1]]+=kv[2] } }
  END { s=""; for (k in c) s=s (s==""?"":", ") k " " c[k]; print (s==""?"–":s) }' "$RUNS_TSV"; }
{
  echo
  echo "## Reloading a naive app (bin/crashy: exits at once on SIGTERM), launch shared vs reuseport, 2 workers"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), $("$LAUNCH" version 2>/dev/null | head -1). RUNS=$RUNS rounds × $RELOADS reloads per window (one every $GAP_S s, window ${WIN_S} s), 64 connections. $( [[ $PIN == 1 ]] && echo "Pinned: servers on CPU 0, load on CPU 1." || echo "Not pinned.") Load average before/after: $LOADAVG0 / $(cut -d' ' -f1-3 /proc/loadavg); measurements started on a busy machine (> $QUIET_PCT% after ${QUIET_WAIT} s): $NOISY of $(( RUNS * ${#MODES[@]} )). Took $((T1 - T0)) s."
  echo
  echo "| mode | load | failed requests per reload (median) | failures per run | failures / requests | reloads (both workers replaced) | error kinds (all runs) |"
  echo "| --- | --- | ---: | --- | --- | --- | --- |"
  for m in "${MODES[@]}"; do
    for l in keepalive close hka hnoka; do
      [[ $l == h* && -z $HAMMER ]] && continue
      case $l in keepalive) L="keep-alive (wrk)";; close) L="new conn. (wrk, Connection: close)";; hka) L="keep-alive (hammer)";; hnoka) L="new conn. (hammer, 2 s timeout)";; esac
      echo "| $m | $L | **$(fpr "$m" "$l")** | $(per "$m" "$l") | $(tot "$m" "$l") | $(kinds "$m" "$l") |"
    done
  done
  [[ -n $PROXY_NOTE ]] && { echo; echo "$PROXY_NOTE"; }
  echo
  echo "wrk kinds: connect/read/write/timeout socket errors, non2xx. hammer kinds: reset_on_reused_conn_before_response / eof_on_reused_conn_before_response = a keep-alive request the old worker took with it; timeout = no answer in 2 s (a stranded connection); connect_refused. Raw outputs: $OUT/wrk, per-run rows: $RUNS_TSV."
} | tee "$OUT/report.md"
