#!/usr/bin/env bash
# bench/vs-pm2.sh: how throughput scales from 1 to 2 instances, with
# keep-alive and with one TCP connection per request, for
#   go/launch     examples/hello (Go) under launch        (bin/launch bench)
#   node/launch   examples/hello-node (Node) under launch (bin/launch bench)
#   node/pm2      the same app.js under PM2's cluster mode (pm2 start app.js -i N)
# Every figure comes from the same load generator (bench.Load): `launch bench`
# for the launch configs, bin/loadgen (its command-line face) for PM2, with
# the same parameters: 1 s warm-up, C connections, D measured, 127.0.0.1.
#
#   make bench-vs-pm2                       # RUNS=1 D=5s C=64
#
# One run, interleaved: for each instance count and connection mode, the
# three configs back to back, in an order that rotates, each started fresh
# and stopped after its measurement. RUNS=n repeats that and reports
# medians. Before each measurement the script waits (QUIET_WAIT, 60 s) for
# other processes to leave the CPUs mostly idle (QUIET_PCT, 25 %).
#
# PM2 comes from the peer benchmark's setup (../shared/peer/setup.sh
# relative to the repository, or PEER=dir): pm2@7.0.4 under PEER_WORK
# (default /tmp/peer). This script runs its own PM2 daemon (PM2_HOME under
# BENCH_OUT) and stops it with `pm2 kill` on that home only. Node configs
# need node. Load goes to 127.0.0.1 only; every process is stopped by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source bench/lib.sh
RUNS=${RUNS:-1}; D=${D:-5s}; C=${C:-64}; BASE_PORT=${BASE_PORT:-18351}
OUT=${BENCH_OUT:-/tmp/launch-bench}/vs-pm2; mkdir -p "$OUT"
PEER=${PEER:-$ROOT/../shared/peer}
PEER_WORK=${PEER_WORK:-/tmp/peer}
PM2BIN="$PEER_WORK/node_modules/.bin/pm2"
export PM2_HOME="$OUT/pm2home"

command -v node >/dev/null || die "node is not installed: the Node and PM2 configs need it"
[[ -f $PEER/setup.sh && -f $PEER/lib.sh ]] || die "PM2 setup not found in $PEER (the peer benchmark, ../shared/peer relative to the repository); set PEER=/path/to/peer"
if [[ ! -x $PM2BIN ]]; then
  log "installing PM2 with $PEER/setup.sh (PEER_WORK=$PEER_WORK)"
  PEER_WORK="$PEER_WORK" bash "$PEER/setup.sh" >"$OUT/peer-setup.log" 2>&1 || die "$PEER/setup.sh failed; see $OUT/peer-setup.log"
  [[ -x $PM2BIN ]] || die "$PEER/setup.sh did not install pm2 at $PM2BIN; see $OUT/peer-setup.log"
fi
go build -o bin/launch ./cmd/launch
go build -o bin/hello ./examples/hello
go build -o bin/loadgen ./bench/loadgen
pm2v=$(node -p "require('$PEER_WORK/node_modules/pm2/package.json').version")

# The app files, on our own ports (the examples' 8080/8081 may be taken).
cat > "$OUT/go.yaml" <<YAML
apps:
  - name: go
    script: $ROOT/bin/hello
    listen: ["127.0.0.1:$BASE_PORT"]
    ready: notify
YAML
cat > "$OUT/node.yaml" <<YAML
apps:
  - name: node
    script: $ROOT/examples/hello-node/app.js
    listen: ["127.0.0.1:$((BASE_PORT + 1))"]
    wait_ready: true
YAML
PM2_PORT=$((BASE_PORT + 2))
for p in "$BASE_PORT" "$((BASE_PORT + 1))" "$PM2_PORT"; do need_free_port "$p"; done

cleanup() {
  "$PM2BIN" kill >/dev/null 2>&1 || true
}
trap cleanup EXIT

# wait_workers URL N: until answers come from N different workers (X-Pid),
# 20 s at most: pm2 start returns before its cluster workers listen.
wait_workers() {
  local i seen
  for i in $(seq 100); do
    seen=$(bin/loadgen -url "$1" -c 2 -n 40 -d 2s -new-conn 2>/dev/null |
      python3 -c 'import json,sys; print(len([k for k in json.load(sys.stdin)["per_pid"] if k]))' 2>/dev/null || echo 0)
    (( seen >= $2 )) && return 0
    sleep 0.2
  done
  return 1
}

# measure CONFIG N MODE ROUND: one measurement; appends a JSON line to raw.
raw="$OUT/raw.jsonl"; : > "$raw"
measure() {
  local cfg=$1 n=$2 mode=$3 r=$4 flag=() j
  [[ $mode == new-conn ]] && flag=(--new-conn)
  case $cfg in
    go-launch|node-launch)
      local app="$OUT/${cfg%-launch}.yaml"
      j=$(bin/launch bench "$app" --instances "$n" -c "$C" -d "$D" "${flag[@]}" -o json 2>"$OUT/last-bench.err") ||
        { cat "$OUT/last-bench.err" >&2; die "launch bench $cfg failed"; }
      ;;
    node-pm2)
      local lflag=(); [[ $mode == new-conn ]] && lflag=(-new-conn)
      HOST=127.0.0.1 PORT=$PM2_PORT "$PM2BIN" start "$ROOT/examples/hello-node/app.js" --name vs-pm2 -i "$n" >"$OUT/pm2-start.log" 2>&1 ||
        { cat "$OUT/pm2-start.log" >&2; die "pm2 start failed"; }
      wait_workers "http://127.0.0.1:$PM2_PORT/" "$n" || die "PM2's app does not answer from $n workers on $PM2_PORT"
      bin/loadgen -url "http://127.0.0.1:$PM2_PORT/" -c "$C" -d 1s "${lflag[@]}" >/dev/null
      j=$(bin/loadgen -url "http://127.0.0.1:$PM2_PORT/" -c "$C" -d "$D" "${lflag[@]}" -workers "$n")
      "$PM2BIN" delete vs-pm2 >/dev/null 2>&1
      ;;
  esac
  python3 -c 'import json,sys; print(json.dumps({"round": int(sys.argv[1]), "config": sys.argv[2], "n": int(sys.argv[3]), "mode": sys.argv[4], "out": json.loads(sys.argv[5])}))' \
    "$r" "$cfg" "$n" "$mode" "$j" >> "$raw"
}

configs=(go-launch node-launch node-pm2)
total=$(( RUNS * 2 * 2 * ${#configs[@]} )); k=0
log "$RUNS run(s) of 1 and 2 instances x keep-alive/new-conn x ${configs[*]}: $total measurements of $D, $C connections (pm2 $pm2v)"
for ((r = 1; r <= RUNS; r++)); do
  for n in 1 2; do
    for mode in keep-alive new-conn; do
      for ((i = 0; i < ${#configs[@]}; i++)); do
        cfg=${configs[$(( (i + k) % ${#configs[@]} ))]}
        wait_quiet
        measure "$cfg" "$n" "$mode" "$r"
        k=$((k + 1))
        log "$k/$total $cfg n=$n $mode: $(tail -1 "$raw" | python3 -c 'import json,sys; o=json.load(sys.stdin)["out"]; o=o["runs"][0] if "runs" in o else o; print(round(o["rps"]), "req/s")')"
      done
    done
  done
done

python3 - "$raw" "$D" "$C" "$RUNS" "$pm2v" <<'PY'
import json, sys, statistics as st
raw, D, C, RUNS, pm2v = sys.argv[1:]
rows = {}
for line in open(raw):
    m = json.loads(line)
    o = m["out"]
    if "runs" in o:  # launch bench -o json
        o = o["runs"][0]
        r = dict(rps=o["rps"], p50=o["p50_ms"], p99=o["p99_ms"], failed=o["errors"] + o["non_2xx"] + o["unsent"], fair=o["fairness"])
    else:            # loadgen
        known = {k: v for k, v in o["per_pid"].items() if k}
        r = dict(rps=o["rps"], p50=o["p50_ns"] / 1e6, p99=o["p99_ns"] / 1e6, failed=o["errors"] + o["non_2xx"], fair=o["jain"] if known else None)
    rows.setdefault((m["config"], m["mode"], m["n"]), []).append(r)
med = lambda rs, k: st.median(x[k] for x in rs)
names = {"go-launch": ("Go hello", "launch"), "node-launch": ("Node hello", "launch"), "node-pm2": ("Node hello", f"PM2 {pm2v} cluster")}
print(f"| app | launcher | connections | instances | req/s | speed-up | p50 ms | p99 ms | failed | fairness |")
print(f"| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for cfg in ("go-launch", "node-launch", "node-pm2"):
    for mode in ("keep-alive", "new-conn"):
        base = med(rows[(cfg, mode, 1)], "rps") if (cfg, mode, 1) in rows else None
        for n in (1, 2):
            rs = rows.get((cfg, mode, n))
            if not rs:
                continue
            fair = [x["fair"] for x in rs if x["fair"] is not None]
            app, launcher = names[cfg]
            print(f"| {app} | {launcher} | {mode} | {n} | {med(rs, 'rps'):,.0f} | {med(rs, 'rps') / base:.2f}x | {med(rs, 'p50'):.2f} | {med(rs, 'p99'):.2f} | {sum(x['failed'] for x in rs)} | {st.median(fair):.3f} |" if fair else
                  f"| {app} | {launcher} | {mode} | {n} | {med(rs, 'rps'):,.0f} | {med(rs, 'rps') / base:.2f}x | {med(rs, 'p50'):.2f} | {med(rs, 'p99'):.2f} | {sum(x['failed'] for x in rs)} | unknown |")
print(f"\n{C} connections, {D} per measurement after a 1 s warm-up, {'median of ' + RUNS + ' runs' if RUNS != '1' else 'one run'}, interleaved; speed-up = req/s over the same config's 1-instance req/s")
PY
echo "raw: $raw; reproduce: make bench-vs-pm2 (RUNS=$RUNS D=$D C=$C)"
