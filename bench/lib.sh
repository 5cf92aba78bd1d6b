# Helpers for the bench/*.sh scripts. Source it; do not run it.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# need_wrk: installs Debian's wrk when it is missing.
need_wrk() {
  command -v wrk >/dev/null && return 0
  log "installing wrk (apt-get)"
  local sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq wrk >/dev/null || die "could not install wrk"
}

# wait_quiet: until other processes leave the CPUs mostly idle (at most
# QUIET_PCT % busy over 1 s while our servers idle), at most QUIET_WAIT s:
# this machine may be shared, and a measurement next to someone's build says
# little. Measures anyway after that, with a note, and counts it in NOISY.
QUIET_PCT=${QUIET_PCT:-25}; QUIET_WAIT=${QUIET_WAIT:-60}; NOISY=${NOISY:-0}
busy_pct() {
  local a b i idle total=0
  read -r -a a < /proc/stat; sleep 1; read -r -a b < /proc/stat
  idle=$(( b[4] + b[5] - a[4] - a[5] ))
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
wait_quiet() {
  local t=0 p
  while p=$(busy_pct); (( p > QUIET_PCT && t < QUIET_WAIT )); do t=$((t + 1)); done
  if (( p > QUIET_PCT )); then
    log "note: the machine stayed busier than $QUIET_PCT% for ${QUIET_WAIT}s (last: $p%); measuring anyway"
    NOISY=$((NOISY + 1))
  fi
  return 0
}

# wrk_parse FILE -> "rps p99_ms sock_errors non2xx requests detail" from a
# `wrk --latency` report (detail: the socket errors by kind).
wrk_parse() {
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /m$/) return v*60000; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec:/ { rps=$2 }
    /^ +99%/ { p99=ms($2) }
    /requests in/ { req=$1 }
    /Socket errors:/ { gsub(",",""); err=$4+$6+$8+$10; d=sprintf("connect=%s,read=%s,write=%s,timeout=%s",$4,$6,$8,$10) }
    /Non-2xx or 3xx responses:/ { n2=$5 }
    END { if (rps=="") rps=0; if (p99=="") p99=0; if (req=="") req=0; if (d=="") d="-"; printf "%s %s %d %d %d %s\n", rps, p99, err, n2, req, d }
  ' "$1"
}

# wait_answer URL: until bin/loadgen gets one answer (10 s at most).
wait_answer() {
  local i
  for i in $(seq 100); do
    bin/loadgen -url "$1" -c 1 -n 1 -d 1s 2>/dev/null | grep -q '"requests":1,' && return 0
    sleep 0.1
  done
  return 1
}

# need_free_port PORT: fails when something already listens on
# 127.0.0.1:PORT (this machine may run other people's benchmarks).
need_free_port() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    die "127.0.0.1:$1 is in use by another process (see ss -ltnp); choose other ports (PORT= or BASE_PORT=)"
  fi
}

# alive PID: the process runs.
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# stop_pid PID [GRACE_S]: SIGTERM, then SIGKILL after GRACE_S (10) seconds.
stop_pid() {
  local p=$1 g=${2:-10} i=0
  alive "$p" || return 0
  kill -TERM "$p" 2>/dev/null
  while alive "$p" && (( i < g * 10 )); do sleep 0.1; i=$((i + 1)); done
  alive "$p" && { log "pid $p alive ${g}s after SIGTERM: SIGKILL"; kill -KILL "$p" 2>/dev/null; }
  wait "$p" 2>/dev/null
}

# port_busy PORT: something accepts on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
