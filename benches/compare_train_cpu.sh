#!/usr/bin/env bash
# The CPU figures of docs/performance.md ("Training against PyTorch eager"): benches/compare_train.py on the
# workloads that fit this machine, one JSON line each into OUT (default /dev/stdout).
#   bash benches/compare_train_cpu.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/dev/stdout}
PY=.deps/bench-venv/bin/python
run() { "$PY" benches/compare_train.py --calib target/release/calib "$@" >> "$OUT"; }
run --model small-cnn --batch-size 128 --steps 20
run --model resnet18 --batch-size 32 --steps 5
run --model resnet110 --batch-size 64 --steps 5
run --model resnet110-official --batch-size 8 --steps 3 --warmup 1
run --model transformer-small --tokens 4096 --classes 10000 --steps 10
run --model transformer-base --tokens 2048 --steps 3 --warmup 1
