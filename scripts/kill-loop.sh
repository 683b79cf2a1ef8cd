#!/usr/bin/env bash
# The long fault-injection loop behind tests/tests/faults.rs: trains the SST recipe for 3 short epochs, kills it with
# SIGKILL at a random moment, resumes, and repeats until it ends; then compares the weights and the log (timing
# fields aside) with an uninterrupted run. ROUNDS rounds (default 20).
#
#   bash scripts/kill-loop.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
calib=${CALIB:-target/release/calib}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--recipe recipes/sst/tree-lstm.toml --epochs 3 --set train.max_batches=4 --device cpu --quiet)
strip() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); [d.pop(k,None) for k in ("seconds","samples_per_second","data_wait_seconds")]; print(json.dumps(d,sort_keys=True))' "$1"; }
"$calib" train "${args[@]}" --out "$tmp/straight"
for r in $(seq 1 "$rounds"); do
  out="$tmp/run-$r" kills=0
  "$calib" train "${args[@]}" --out "$out" & pid=$!
  while true; do
    sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || { echo "round $r: a run failed"; exit 1; }
      break
    fi
    kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; kills=$((kills + 1))
    # Killed before the run folder had its config: the same command again; otherwise --resume.
    if [ -f "$out/config.toml" ]; then
      "$calib" train --resume --out "$out" --device cpu --quiet & pid=$!
    else
      "$calib" train "${args[@]}" --out "$out" & pid=$!
    fi
  done
  cmp -s "$tmp/straight/last.safetensors" "$out/last.safetensors" || { echo "round $r: weights differ"; exit 1; }
  diff <(strip "$tmp/straight/metrics.jsonl") <(strip "$out/metrics.jsonl") >/dev/null || { echo "round $r: logs differ"; exit 1; }
  if ls -A "$out" | grep -q '^\.calib-'; then echo "round $r: temporary files left"; exit 1; fi
  echo "round $r: $kills kills, identical"
done
