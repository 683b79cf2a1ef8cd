#!/usr/bin/env bash
# The GPU checks of the open issues, as one prepared call (the device machine has PyTorch 2.11 + CUDA and no Rust).
#
#   bash scripts/gpu-check.sh prepare   # here: release binaries and the Multi30k files into gpu/ (git-ignored)
#   bash scripts/gpu-check.sh run       # on the device (carry gpu/): writes $OUT/gpu-check.log and JSON results
#   bash scripts/gpu-check.sh prepare-paper   # here: binaries and CIFAR-10 into gpu-paper/ (a second call: 55 MB)
#   bash scripts/gpu-check.sh run-paper       # on the device (carry gpu-paper/): CIFAR-10 ResNet-50, CE against
#                                             # FLSD-53 with the paper's recipe shortened to EPOCHS (default 12,
#                                             # milestones scaled), evaluated at the last epoch, and `calib report`
#
# What it checks on CUDA: libtorch_cuda.so is loaded and a device seen; a loss and its gradient; the quickstart recipe
# trains in fp32 and bf16 autocast with the loader thread (pinned memory, non-blocking copies: metrics.jsonl's
# data_wait_seconds says whether the GPU waited for data); a small Transformer trains on Multi30k; beam search on the
# device decodes with and without the key/value cache (same translations) and its speed; eval streams predictions; the
# text tracks train and evaluate on CUDA (the level-batched Tree-LSTM on SST, the Global Pooling CNN on a 20 Newsgroups
# subset) and `calib bench text` gives their speed (trees/s level-batched against node by node, documents/s); a
# one-rank NCCL group trains the Tree-LSTM to the weights of a single process.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    grep -qx 'gpu/' .git/info/exclude 2>/dev/null || echo 'gpu/' >> .git/info/exclude
    cargo build --release -p calib-cli && cargo build --release -p calib-torch
    rm -rf gpu && mkdir -p gpu/multi30k
    cp target/release/calib target/release/calib-torch gpu/
    # The NCCL half of the data-parallel shim, found beside calib-torch.
    bash scripts/build-nccl-shim.sh release && cp target/release/libcalib_nccl.so gpu/
    cp scripts/compare-weights.py gpu/
    cp ../shared/data/multi30k/{train,val,test_2016_flickr}.{en,de}.gz gpu/multi30k/
    mkdir -p gpu/sst gpu/20ng
    cp ../shared/data/sst/trees/{train,dev,test}.txt gpu/sst/
    gzip -c ../shared/data/glove/glove.6B.50d.subset.txt > gpu/glove.txt.gz
    # 60 posts of every group from each split (the whole corpus does not fit the 64 MiB a call carries).
    for split in 20news-bydate-train 20news-bydate-test; do
      for g in ../shared/data/20ng/$split/*/; do
        mkdir -p "gpu/20ng/$split/$(basename "$g")"
        ls "$g" | sort -n | head -n 60 | while read -r f; do cp "$g/$f" "gpu/20ng/$split/$(basename "$g")/"; done
      done
    done
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
      G='data.glove="gpu/glove.txt.gz"'
      $C train --recipe recipes/sst/tree-lstm.toml --data gpu/sst --set "$G" --epochs 2 --out "$OUT/sst" --device cuda --quiet --format json
      tail -n 2 "$OUT/sst/metrics.jsonl"
      $C eval --run "$OUT/sst" --bootstrap 50 --device cuda --format json > "$OUT/sst-eval.json" && echo "sst eval ok"
      # Data parallelism (issue 13): a one-rank NCCL group (every collective run) ends as one process does.
      D=(--recipe recipes/sst/tree-lstm.toml --data gpu/sst --set "$G" --set model.dropout=0 --set train.max_batches=20
        --set 'train.optimizer={kind="sgd", momentum=0.9}' --epochs 1 --device cuda --quiet --format json)
      { $C train "${D[@]}" --out "$OUT/nccl-single" \
        && RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29531 $C train "${D[@]}" --out "$OUT/nccl-1" \
        && python3 gpu/compare-weights.py "$OUT/nccl-single/last.safetensors" "$OUT/nccl-1/last.safetensors" 1e-5 \
        && echo "nccl one-rank check ok"; } || echo "nccl one-rank check FAILED"
      $C bench text --recipe recipes/sst/tree-lstm.toml --set 'data.dir="gpu/sst"' --set "$G" --batches 40 --device cuda --format json
      $C train --recipe recipes/20ng/gp-cnn.toml --data gpu/20ng --set "$G" --set data.val_size=100 --epochs 3 \
        --out "$OUT/20ng" --device cuda --quiet --format json
      tail -n 1 "$OUT/20ng/metrics.jsonl"
      $C bench text --recipe recipes/20ng/gp-cnn.toml --set 'data.dir="gpu/20ng"' --set "$G" --set data.val_size=100 \
        --batches 10 --device cuda --format json
    } 2>&1 | tee "$log"
    ;;
  prepare-paper)
    grep -qx 'gpu-paper/' .git/info/exclude 2>/dev/null || echo 'gpu-paper/' >> .git/info/exclude
    cargo build --release -p calib-cli && cargo build --release -p calib-torch
    rm -rf gpu-paper && mkdir -p gpu-paper
    cp target/release/calib target/release/calib-torch gpu-paper/
    cp ../shared/data/cifar10/train.tar.gz gpu-paper/
    tar -czf gpu-paper/test.tar.gz -C ../shared/data/cifar10 test
    du -sh gpu-paper
    ;;
  run-paper)
    OUT=${OUT:-gpu-paper/out}
    EPOCHS=${EPOCHS:-12}
    mkdir -p "$OUT"
    TL=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
    export LD_LIBRARY_PATH=$TL
    # The paper's milestones 150 and 250 of 350 epochs, scaled to EPOCHS (official timing: one epoch early).
    m1=$(( EPOCHS * 150 / 350 )) m2=$(( EPOCHS * 250 / 350 ))
    {
      nvidia-smi --query-gpu=name,memory.total --format=csv || true
      date -u
      for loss in ce flsd:53; do
        gpu-paper/calib-torch train --recipe recipes/cifar10/resnet50.toml --data gpu-paper --loss "$loss" \
          --set 'data.train="train.tar.gz"' --set 'data.test="test.tar.gz"' --epochs "$EPOCHS" \
          --set "train.schedule.milestones=[$m1,$m2]" --out "$OUT/resnet50/${loss//:/-}" --device cuda --quiet --format json
        gpu-paper/calib-torch eval --run "$OUT/resnet50/${loss//:/-}" --checkpoint last --device cuda --format json \
          > "$OUT/${loss//:/-}-eval.json" && echo "$loss eval ok"
      done
      gpu-paper/calib report "$OUT/resnet50" --out "$OUT/report" --format json > "$OUT/report.json" && cat "$OUT/report/table1-ece.md"
    } 2>&1 | tee "$OUT/gpu-paper.log"
    ;;
  *)
    echo "usage: bash scripts/gpu-check.sh prepare|run|prepare-paper|run-paper" >&2
    exit 2
    ;;
esac
