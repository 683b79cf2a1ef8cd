#!/usr/bin/env bash
# The GPU checks of the open issues, as one prepared call (the device machine has PyTorch 2.11 + CUDA and no Rust).
#
#   bash scripts/gpu-check.sh prepare   # here: release binaries and the Multi30k files into gpu/ (git-ignored)
#   bash scripts/gpu-check.sh run       # on the device (carry gpu/): writes $OUT/gpu-check.log and JSON results
#
# What it checks on CUDA: libtorch_cuda.so is loaded and a device seen; a loss and its gradient; the quickstart recipe
# trains in fp32 and bf16 autocast with the loader thread (pinned memory, non-blocking copies: metrics.jsonl's
# data_wait_seconds says whether the GPU waited for data); a small Transformer trains on Multi30k; beam search on the
# device decodes with and without the key/value cache (same translations) and its speed; eval streams predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    grep -qx 'gpu/' .git/info/exclude 2>/dev/null || echo 'gpu/' >> .git/info/exclude
    cargo build --release -p calib-cli && cargo build --release -p calib-torch
    rm -rf gpu && mkdir -p gpu/multi30k
    cp target/release/calib target/release/calib-torch gpu/
    cp ../shared/data/multi30k/{train,val,test_2016_flickr}.{en,de}.gz gpu/multi30k/
    du -sh gpu
    ;;
  run)
    OUT=${OUT:-gpu/out}
    mkdir -p "$OUT"
    TL=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
    export LD_LIBRARY_PATH=$TL
    log="$OUT/gpu-check.log"
    C=gpu/calib-torch
    {
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
      date -u
      python3 - "$OUT" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(0)
np.save(sys.argv[1] + "/logits.npy", rng.normal(size=(512, 10)).astype(np.float32))
np.save(sys.argv[1] + "/labels.npy", rng.integers(0, 10, 512))
PY
      $C loss --logits "$OUT/logits.npy" --labels "$OUT/labels.npy" --loss flsd:53 --device cuda --format json
      for p in fp32 bf16; do
        $C train --recipe recipes/quickstart/small-cnn.toml --epochs 3 --precision $p --out "$OUT/img-$p" --device cuda --quiet --format json
        tail -n 1 "$OUT/img-$p/metrics.jsonl"
      done
      $C eval --run "$OUT/img-fp32" --bootstrap 50 --device cuda --format json > "$OUT/img-fp32-eval.json" && echo "eval ok"
      $C train --recipe recipes/multi30k/transformer-small.toml --data gpu/multi30k --epochs 2 --set data.vocab_size=4000 \
        --set train.batch_size=8192 --set train.keep_epochs=0 --out "$OUT/mt" --device cuda --quiet --format json
      tail -n 2 "$OUT/mt/metrics.jsonl"
      zcat gpu/multi30k/test_2016_flickr.en.gz > "$OUT/test.en"
      $C bench-decode --run "$OUT/mt" --src "$OUT/test.en" --limit 1000 --beam 4 --device cuda --format json
      $C bench-decode --run "$OUT/mt" --src "$OUT/test.en" --limit 200 --beam 4 --device cpu --format json
    } 2>&1 | tee "$log"
    ;;
  *)
    echo "usage: bash scripts/gpu-check.sh prepare|run" >&2
    exit 2
    ;;
esac
