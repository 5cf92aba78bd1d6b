#!/usr/bin/env bash
# Fairness of the balance modes: how evenly do 2 workers share the load,
# and what does it cost in p99, under `balance: shared` (one socket every
# worker accepts from) vs `balance: reuseport` (one SO_REUSEPORT socket per
# worker, the kernel hashes connections across them)?
#
#   make build && bench/fairness.sh          # RUNS=3 D=4s C=64 by default
#
# Configs: {Go hello, Node hello} x {shared, reuseport} x {keep-alive,
# one connection per request} x {two equal workers, worker 1 slow
# (SLOW_US=300 µs of CPU per request)}. Every master runs side by side on
# its own port (idle ones cost nothing); each round measures every config
# once, in a rotating order, and the table shows medians over rounds.
# Load: bin/loadgen (bench/loadgen, fasthttp, closed loop) on 127.0.0.1
# only; every process is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}; D=${D:-4s}; C=${C:-64}; SLOW_US=${SLOW_US:-300}
OUT=${BENCH_OUT:-/tmp/launch-bench}/fairness; mkdir -p "$OUT"
BASE_PORT=${BASE_PORT:-18200}
[[ -x bin/launch && -x bin/hello ]] || make build >/dev/null
go build -o bin/loadgen ./bench/loadgen
have_node=1; command -v node >/dev/null || { have_node=0; echo "node not found: Node configs skipped" >&2; }

pids=(); tmp=$(mktemp -d)
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

declare -A port
configs=()
n=0
for app in go node; do
  [[ $app == node && $have_node == 0 ]] && continue
  for mode in shared reuseport; do
    for slow in even slow; do
      name="$app-$mode-$slow"; p=$((BASE_PORT + n)); n=$((n + 1)); port[$name]=$p
      if [[ $app == go ]]; then script="script: $PWD/bin/hello
    ready: notify"; else script="script: $PWD/examples/hello-node/app.js
    wait_ready: true"; fi
      slowenv=""; [[ $slow == slow ]] && slowenv="SLOW_INSTANCE: \"1\", SLOW_US: \"$SLOW_US\""
      cat > "$tmp/$name.yaml" <<YAML
apps:
  - name: $name
    $script
    instances: 2
    listen: ["127.0.0.1:$p"]
    balance: $mode
    env: { $slowenv }
YAML
      bin/launch "$tmp/$name.yaml" > "$tmp/$name.log" 2>&1 &
      pids+=($!)
      configs+=("$name")
    done
  done
done
for name in "${configs[@]}"; do
  for _ in $(seq 100); do grep -q "ready (2 of 2" "$tmp/$name.log" && break; sleep 0.1; done
  grep -q "ready (2 of 2" "$tmp/$name.log" || { echo "$name did not get ready:"; cat "$tmp/$name.log"; exit 1; }
done

raw="$OUT/raw.tsv"; : > "$raw"
loads=(keepalive newconn)
for ((r = 0; r < RUNS; r++)); do
  k=0
  for ((i = 0; i < ${#configs[@]}; i++)); do
    name=${configs[$(( (i + r) % ${#configs[@]} ))]}
    for load in "${loads[@]}"; do
      flag=""; [[ $load == newconn ]] && flag="-new-conn"
      url="http://127.0.0.1:${port[$name]}/"
      bin/loadgen -url "$url" -c "$C" -d 1s $flag -workers 2 > /dev/null   # warm-up
      json=$(bin/loadgen -url "$url" -c "$C" -d "$D" $flag -workers 2)
      printf '%s\t%s\t%s\t%s\n' "$r" "$name" "$load" "$json" >> "$raw"
      k=$((k + 1)); printf '\rround %d/%d: %d/%d' $((r + 1)) "$RUNS" "$k" $(( ${#configs[@]} * 2 )) >&2
    done
  done
done
echo >&2

python3 - "$raw" "$RUNS" <<'PY'
import json, sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    r, name, load, js = line.rstrip("\n").split("\t", 3)
    rows.setdefault((name, load), []).append(json.loads(js))
print(f"| app | mode | workers | load | req/s | p99 ms | Jain | shares % | errors |")
print(f"| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: |")
for (name, load), rs in sorted(rows.items()):
    app, mode, slow = name.split("-")
    med = lambda k: st.median(x[k] for x in rs)
    mid = sorted(rs, key=lambda x: x["jain"])[len(rs) // 2]
    errs = sum(x["errors"] + x["non_2xx"] for x in rs)
    print(f"| {app} | {mode} | {'1 slow' if slow == 'slow' else 'equal'} | {load} | {med('rps'):,.0f} | {med('p99_ns')/1e6:.2f} | {med('jain'):.3f} | {mid['shares']} | {errs} |")
PY
echo
echo "reproduce: make build && RUNS=$RUNS D=$D C=$C SLOW_US=$SLOW_US bench/fairness.sh   (raw: $raw)"
