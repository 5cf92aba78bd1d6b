#!/usr/bin/env bash
# bench/validate.sh: does launch's load generator (bench.Load, the one
# `launch bench` uses; here through bin/loadgen) measure what wrk measures?
# Both load the Go example app (bin/hello, run by hand on 127.0.0.1) with
# the same connections, keep-alive, one generator thread for wrk (-t1);
# interleaved rounds (the order alternates), medians. The ratio
# loadgen/wrk of req/s must be >= 0.9 (exit 1 otherwise).
#
#   make bench-validate                 # ROUNDS=7 D=5s C=64
#
# Pinning: with 2 or more CPUs the server runs on the first half of them
# and the generators on the other half (taskset), so a generator's own CPU
# use does not take from the server; what is compared is then what each
# tool measures, and each tool's CPU per request is printed beside it.
# PIN=0 runs everything unpinned (then the cheaper generator wins).
# wrk comes from Debian (installed here with apt-get when missing).
# Load goes to 127.0.0.1 only; every process is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}; D=${D:-5s}; C=${C:-64}; PORT=${PORT:-18341}; PIN=${PIN:-1}
OUT=${BENCH_OUT:-/tmp/launch-bench}/validate; mkdir -p "$OUT"
source bench/lib.sh

need_wrk
go build -o bin/hello ./examples/hello
go build -o bin/loadgen ./bench/loadgen

n=$(nproc)
SRV=(); GEN=(); pinning="unpinned"
if [[ $PIN == 1 && $n -ge 2 ]] && command -v taskset >/dev/null; then
  half=$((n / 2))
  SRV=(taskset -c "0-$((half - 1))"); GEN=(taskset -c "$half-$((n - 1))")
  pinning="server on CPUs 0-$((half - 1)), generator on CPUs $half-$((n - 1))"
fi

pid=""
cleanup() { [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
need_free_port "$PORT"
HOST=127.0.0.1 PORT=$PORT "${SRV[@]}" bin/hello >"$OUT/hello.log" 2>&1 &
pid=$!
URL="http://127.0.0.1:$PORT/"
wait_answer "$URL" || die "bin/hello does not answer at $URL (see $OUT/hello.log)"
# The answer must come from our hello (X-Pid), not from someone else's server.
bin/loadgen -url "$URL" -c 1 -n 1 -d 1s | grep -q "\"per_pid\":{\"$pid\":1}" || die "the server at $URL is not the bin/hello started here (pid $pid)"

# field NAME JSON: a number from loadgen's JSON
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$2"; }
# run_timed CMD...: runs CMD, then prints the CPU seconds (user + system) it
# used on fd 3: the growth of this shell's cutime+cstime (/proc/$BASHPID/stat,
# read with builtins so that no other child is counted).
HZ=$(getconf CLK_TCK)
children_ticks() { local st; read -r -a st < "/proc/$BASHPID/stat"; TICKS=$(( st[15] + st[16] )); }
run_timed() { local t0; children_ticks; t0=$TICKS; "$@"; children_ticks; awk -v a="$t0" -v b="$TICKS" -v hz="$HZ" 'BEGIN{printf "%.3f\n", (b-a)/hz}' >&3; }


raw="$OUT/rounds.tsv"; printf 'round\ttool\treq_per_s\tp50_ms\tp99_ms\terrors\tcpu_us_per_req\n' > "$raw"
measure_loadgen() {
  "${GEN[@]}" bin/loadgen -url "$URL" -c "$C" -d 1s >/dev/null
  local j; j=$("${GEN[@]}" bin/loadgen -url "$URL" -c "$C" -d "$D")
  local req; req=$(field requests "$j")
  printf '%s\tloadgen\t%.0f\t%.3f\t%.3f\t%s\t%.2f\n' "$1" "$(field rps "$j")" "$(awk -v v="$(field p50_ns "$j")" 'BEGIN{print v/1e6}')" \
    "$(awk -v v="$(field p99_ns "$j")" 'BEGIN{print v/1e6}')" "$(( $(field errors "$j") + $(field non_2xx "$j") ))" \
    "$(awk -v c="$(field generator_cpu_ns "$j")" -v r="$req" 'BEGIN{print c/1e3/r}')" >> "$raw"
}
measure_wrk() {
  "${GEN[@]}" wrk -t1 -c"$C" -d1s "$URL" >/dev/null
  local f="$OUT/wrk_$1.txt" cpu
  cpu=$( { run_timed "${GEN[@]}" wrk -t1 -c"$C" -d"$D" --latency "$URL" > "$f"; } 3>&1 )
  awk -v r="$1" -v cpu="$cpu" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec:/ { rps=$2 } /^ +50%/ { p50=ms($2) } /^ +99%/ { p99=ms($2) } /requests in/ { n=$1 }
    /Socket errors:/ { gsub(",",""); e=$4+$6+$8+$10 } /Non-2xx/ { e+=$5 }
    END { printf "%s\twrk\t%.0f\t%.3f\t%.3f\t%d\t%.2f\n", r, rps, p50, p99, e, cpu*1e6/n }' "$f" >> "$raw"
}
log "$ROUNDS rounds of ${D} each, $C connections, keep-alive; $pinning"
for ((r = 1; r <= ROUNDS; r++)); do
  wait_quiet
  if (( r % 2 )); then measure_loadgen "$r"; measure_wrk "$r"; else measure_wrk "$r"; measure_loadgen "$r"; fi
  log "round $r: $(awk -F'\t' -v r="$r" '$1==r {printf "%s %s req/s p99 %s ms; ", $2, $3, $5}' "$raw")"
done

awk -F'\t' -v pin="$pinning" -v c="$C" -v d="$D" -v rounds="$ROUNDS" '
  NR > 1 { v[$2, ++n[$2]] = $3; p99[$2, n[$2]] = $5; cpu[$2, n[$2]] = $7; err[$2] += $6; byr[$1, $2] = $3 }
  function med(a, t, k,   i, j, x, m, s) { m = n[t]; for (i = 1; i <= m; i++) s[i] = a[t, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (s[j] < s[i]) { x = s[i]; s[i] = s[j]; s[j] = x }
    return (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2 }
  END {
    printf "| generator | median req/s | median p99 ms | errors | generator CPU µs/req |\n| --- | ---: | ---: | ---: | ---: |\n"
    for (t = 0; t < 2; t++) { tool = t ? "wrk" : "loadgen"
      printf "| %s | %.0f | %.2f | %d | %.2f |\n", (t ? "wrk -t1" : "launch bench (bench.Load)"), med(v, tool), med(p99, tool), err[tool], med(cpu, tool) }
    ratio = med(v, "loadgen") / med(v, "wrk")
    for (i = 1; i <= rounds; i++) rr["r", i] = byr[i, "loadgen"] / byr[i, "wrk"]; n["r"] = rounds
    printf "\nratio loadgen/wrk (median req/s): %.3f; median of per-round ratios: %.3f (%s, %d connections, %s x %d rounds)\n", ratio, med(rr, "r"), pin, c, d, rounds
    # Pairs measured back to back see the same machine: their ratio is the
    # steadier figure on a shared machine, so it decides.
    if (med(rr, "r") > 1.1) print "note: the generator measures more than wrk. Both count only what the server answered, so wrk was likely held back: on a busy machine its one thread is descheduled with all 64 connections at once (compare the p99s)"
    if (med(rr, "r") >= 0.9) print "PASS: at least 90% of what wrk measures"; else { print "FAIL: the generator measures less than 90% of what wrk measures"; exit 1 }
  }' "$raw"
echo "raw: $raw; reproduce: make bench-validate (ROUNDS=$ROUNDS D=$D C=$C PIN=$PIN)"
