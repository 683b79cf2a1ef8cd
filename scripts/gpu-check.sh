#!/usr/bin/env bash
# The GPU checks of the open issues, as one prepared call (the device machine has PyTorch 2.11 + CUDA and no Rust).
#
#   bash scripts/gpu-check.sh prepare   # here: release binaries, the NCCL shim and the data into gpu/ (git-ignored)
#   bash scripts/gpu-check.sh run       # on the device (carry gpu/): every check as a step; $OUT/summary.{json,md}
#   bash scripts/gpu-check.sh run --dry-run   # the same steps on this CPU with tiny shapes (the test suite runs it)
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
# one-rank NCCL group trains the Tree-LSTM to the weights of a single process; `calib bench train` and
# benches/compare_train.py (the device's PyTorch beside us) for ResNet-50, both ResNet-110s and Transformer-base in fp32
# and bf16; the training step recorded as a CUDA graph (train.cuda_graph: the same loss as without, and its speed
# against the eager step); benches/compare_decode.py (the Multi30k run exported to Hugging Face Marian: identical
# translations, speed). A failed step does not stop the others; $OUT/summary.md lists them all.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    grep -qx 'gpu/' .git/info/exclude 2>/dev/null || echo 'gpu/' >> .git/info/exclude
    cargo build --release -p calib-cli && cargo build --release -p calib-torch
    rm -rf gpu && mkdir -p gpu/multi30k
    cp target/release/calib target/release/calib-torch gpu/
    # The shims that link libtorch_cuda.so (NCCL groups, CUDA-graph capture), found beside calib-torch.
    bash scripts/build-cuda-shims.sh release && cp target/release/libcalib_{nccl,cudagraph}.so gpu/
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
    # Every GPU check as independent steps: a failed step is recorded and the others go on. Each step's output is in
    # $OUT/steps/NAME.out; $OUT/summary.json and $OUT/summary.md list every step, its status, seconds and its last JSON.
    # --dry-run: the same steps on the CPU with tiny shapes and the workspace's own binaries (CALIB_BIN, default
    # target/debug) and data (../shared/data), as the test suite runs it.
    DRY=0; [ "${2:-}" = "--dry-run" ] && DRY=1
    OUT=${OUT:-gpu/out}
    mkdir -p "$OUT/steps"
    : > "$OUT/steps.jsonl"
    if [ "$DRY" = 1 ]; then
      BIN=${CALIB_BIN:-target/debug} DEV=cpu PY=${PYTHON:-.deps/bench-venv/bin/python} D=../shared/data
      SST=$D/sst/trees GLOVE=$D/glove/glove.6B.50d.subset.txt M30K=$D/multi30k
    else
      BIN=gpu DEV=cuda PY=python3 SST=gpu/sst GLOVE=gpu/glove.txt.gz M30K=gpu/multi30k
      TL=$("$PY" -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
      export LD_LIBRARY_PATH=$TL
    fi
    C=$BIN/calib-torch
    tiny() { if [ "$DRY" = 1 ]; then echo "$1"; else echo "$2"; fi; }
    step() {
      # In a background subshell, so that `set -e` stops the step at its first failing command (inside an `if` it
      # would be ignored) and the script goes on with the next step.
      local name=$1 t0 ms st=ok; shift
      t0=$(date +%s%N)
      ( set -e; "$@" ) > "$OUT/steps/$name.out" 2>&1 &
      wait $! || st=failed
      ms=$(( ($(date +%s%N) - t0) / 1000000 ))
      printf '{"step": "%s", "status": "%s", "seconds": %d.%03d}\n' "$name" "$st" $((ms / 1000)) $((ms % 1000)) \
        >> "$OUT/steps.jsonl"
      echo "gpu-check: $name: $st" >&2
    }
    device() { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; }
    loss_vs_cpu() {
      "$PY" - "$OUT" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(0)
np.save(sys.argv[1] + "/logits.npy", rng.normal(size=(512, 10)).astype(np.float32))
np.save(sys.argv[1] + "/labels.npy", rng.integers(0, 10, 512))
PY
      for run in "device:$DEV" reference:cpu; do
        $C loss --logits "$OUT/logits.npy" --labels "$OUT/labels.npy" --loss flsd:53 --device "${run#*:}" \
          --grad-out "$OUT/grad-${run%%:*}.npy" --format json > "$OUT/loss-${run%%:*}.json"
      done
      "$PY" - "$OUT" <<'PY'
import json, numpy as np, sys
out = sys.argv[1]
a, b = (json.load(open(f"{out}/loss-{r}.json")) for r in ("device", "reference"))
ga, gb = (np.load(f"{out}/grad-{r}.npy") for r in ("device", "reference"))
diff = float(np.abs(ga - gb).max())
print(json.dumps({"loss": a, "loss_cpu": b, "grad_max_abs_diff": diff}))
assert abs(a["loss"] - b["loss"]) <= 1e-6 * abs(b["loss"]) and diff < 1e-6, "CUDA and CPU disagree"
PY
    }
    steps_vs_cpu() {
      for run in "device:$DEV" reference:cpu; do
        $C train --recipe recipes/quickstart/small-cnn.toml --epochs 1 --set train.max_batches=3 \
          --out "$OUT/steps-${run%%:*}" --device "${run#*:}" --quiet --format json
      done
      "$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
a, b = (json.loads(open(f"{out}/steps-{r}/metrics.jsonl").readline()) for r in ("device", "reference"))
print(json.dumps({"train_loss": a["train_loss"], "train_loss_cpu": b["train_loss"]}))
assert abs(a["train_loss"] - b["train_loss"]) <= 1e-3 * abs(b["train_loss"]), "three steps on CUDA differ from CPU"
PY
    }
    quickstart() {
      $C train --recipe recipes/quickstart/small-cnn.toml --epochs "$(tiny 1 3)" --set "train.max_batches=$(tiny 2 1000)" \
        --precision "$1" --out "$OUT/img-$1" --device "$DEV" --quiet --format json
      tail -n 1 "$OUT/img-$1/metrics.jsonl"
    }
    bench() {
      local m=$1 p=$2 shape
      case $m in
        transformer-*) shape=(--tokens "$(tiny 64 4096)" --classes "$(tiny 500 32000)");;
        *) shape=(--batch-size "$(tiny 2 128)");;
      esac
      $C bench train --model "$m" --precision "$p" "${shape[@]}" --steps "$(tiny 1 20)" --device "$DEV" --format json
    }
    compare_train() {
      local m=$1 p=$2 shape
      case $m in
        transformer-*) shape=(--tokens "$(tiny 64 4096)" --classes "$(tiny 500 32000)");;
        *) shape=(--batch-size "$(tiny 2 128)");;
      esac
      "$PY" benches/compare_train.py --calib "$BIN/calib" --model "$m" --precision "$p" "${shape[@]}" \
        --steps "$(tiny 1 20)" --device "$DEV"
    }
    nccl_one_rank() {
      # Data parallelism (issue 13): a one-rank group (NCCL on CUDA, Gloo in the dry run; every collective run) ends
      # as one process does.
      local D=(--recipe recipes/sst/tree-lstm.toml --data "$SST" --set "data.glove=\"$GLOVE\"" --set model.dropout=0
        --set train.max_batches="$(tiny 2 20)" --set 'train.optimizer={kind="sgd", momentum=0.9}' --epochs 1
        --device "$DEV" --quiet --format json)
      $C train "${D[@]}" --out "$OUT/group-single"
      RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29531 $C train "${D[@]}" --out "$OUT/group-one-rank"
      "$PY" scripts/compare-weights.py "$OUT/group-single/last.safetensors" "$OUT/group-one-rank/last.safetensors" 1e-5
    }
    translation() {
      $C train --recipe recipes/multi30k/transformer-small.toml --data "$M30K" --epochs "$(tiny 1 2)" \
        --set data.vocab_size="$(tiny 500 4000)" --set data.limit="$(tiny 2000 100000000)" \
        --set train.max_batches="$(tiny 2 100000)" --set train.batch_size=8192 --set train.keep_epochs=0 \
        --out "$OUT/mt" --device "$DEV" --quiet --format json
      zcat "$M30K/test_2016_flickr.en.gz" > "$OUT/test.en"
      $C bench-decode --run "$OUT/mt" --src "$OUT/test.en" --limit "$(tiny 5 1000)" --beam 4 --device "$DEV" --format json
    }
    compare_decode() {
      "$PY" benches/compare_decode.py --calib "$BIN/calib" --run "$OUT/mt" --src "$M30K/test_2016_flickr.en.gz" \
        --limit "$(tiny 5 1000)" --beam 4 --device "$DEV"
    }
    text() {
      $C train --recipe recipes/sst/tree-lstm.toml --data "$SST" --set "data.glove=\"$GLOVE\"" --epochs "$(tiny 1 2)" \
        --set train.max_batches="$(tiny 2 100000)" --out "$OUT/sst" --device "$DEV" --quiet --format json
      $C eval --run "$OUT/sst" --bootstrap 50 --device "$DEV" --format json > "$OUT/sst-eval.json"
      $C bench text --recipe recipes/sst/tree-lstm.toml --set "data.dir=\"$SST\"" --set "data.glove=\"$GLOVE\"" \
        --batches "$(tiny 2 40)" --device "$DEV" --format json
      [ "$DRY" = 1 ] && return
      $C train --recipe recipes/20ng/gp-cnn.toml --data gpu/20ng --set "data.glove=\"$GLOVE\"" --set data.val_size=100 \
        --epochs 3 --out "$OUT/20ng" --device "$DEV" --quiet --format json
      $C bench text --recipe recipes/20ng/gp-cnn.toml --set 'data.dir="gpu/20ng"' --set "data.glove=\"$GLOVE\"" \
        --set data.val_size=100 --batches 10 --device "$DEV" --format json
    }
    cuda_graph() {
      # The recorded step (train.cuda_graph, off by default until measured here). Dry run: refused on the CPU with its
      # message. Device: the quickstart's first 30 steps end with the same loss with and without the graph, and
      # `calib bench train` without and with --cuda-graph, where launches set the pace (ResNet-110 of He et al., 330
      # parameters; the small CNN).
      if [ "$DRY" = 1 ]; then
        if $C train --recipe recipes/quickstart/small-cnn.toml --epochs 1 --set train.cuda_graph=true \
          --out "$OUT/graph-refused" --device cpu --quiet 2> "$OUT/graph-refused.err"; then return 1; fi
        grep "cuda_graph needs a CUDA device" "$OUT/graph-refused.err"
        return
      fi
      for g in false true; do
        $C train --recipe recipes/quickstart/small-cnn.toml --epochs 1 --set train.max_batches=30 \
          --set train.cuda_graph=$g --out "$OUT/graph-$g" --device "$DEV" --quiet --format json
      done
      "$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
a, b = (json.loads(open(f"{out}/graph-{g}/metrics.jsonl").readline()) for g in ("true", "false"))
print(json.dumps({"train_loss_graph": a["train_loss"], "train_loss_eager": b["train_loss"],
                  "samples_per_second_graph": a["samples_per_second"], "samples_per_second_eager": b["samples_per_second"]}))
assert abs(a["train_loss"] - b["train_loss"]) <= 1e-3 * abs(b["train_loss"]), "the recorded step trains differently"
PY
      for m in resnet110 small-cnn; do
        for p in fp32 bf16; do
          for g in "" --cuda-graph; do
            $C bench train --model "$m" --precision "$p" --batch-size 128 --steps 50 --device "$DEV" --format json $g \
              > "$OUT/graph-bench-$m-$p${g:+-graph}.json"
          done
          "$PY" -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); print(json.dumps({"model": a["model"], "precision": a["precision"], "eager": a["samples_per_second"], "graph": b["samples_per_second"], "ratio": b["samples_per_second"]/a["samples_per_second"]}))' \
            "$OUT/graph-bench-$m-$p.json" "$OUT/graph-bench-$m-$p-graph.json"
        done
      done
    }
    [ "$DRY" = 1 ] || step device device
    step loss-vs-cpu loss_vs_cpu
    step train-steps-vs-cpu steps_vs_cpu
    for p in fp32 bf16; do step "quickstart-$p" quickstart $p; done
    if [ "$DRY" = 1 ]; then models="small-cnn transformer-small"; else models="resnet50 resnet110 resnet110-official transformer-base"; fi
    for m in $models; do
      for p in fp32 bf16; do
        step "bench-train-$m-$p" bench "$m" "$p"
        step "compare-train-$m-$p" compare_train "$m" "$p"
      done
    done
    step cuda-graph cuda_graph
    step data-parallel-one-rank nccl_one_rank
    step translation translation
    step compare-decode compare_decode
    step text text
    "$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
steps = [json.loads(l) for l in open(f"{out}/steps.jsonl")]
for s in steps:
    text = open(f"{out}/steps/{s['step']}.out", errors="replace").read()
    s["tail"] = text[-400:]
    # The step's last JSON object, if its output ends with one.
    for start in [i for i, c in enumerate(text) if c == "{"][::-1][:50]:
        try:
            s["result"] = json.loads(text[start:])
            break
        except ValueError:
            continue
json.dump({"steps": steps, "ok": all(s["status"] == "ok" for s in steps)}, open(f"{out}/summary.json", "w"), indent=1)
with open(f"{out}/summary.md", "w") as md:
    md.write("| step | status | seconds | figure |\n| --- | --- | ---: | --- |\n")
    for s in steps:
        r = s.get("result", {})
        r = r.get("beam4", r)  # compare_decode.py: the beam-4 figures
        fig = next((f"{k} {r[k]:.4g}" for k in ("ratio", "samples_per_second", "grad_max_abs_diff", "train_loss")
                    if isinstance(r.get(k), (int, float))), "")
        md.write(f"| {s['step']} | {s['status']} | {s['seconds']:.1f} | {fig} |\n")
print(open(f"{out}/summary.md").read())
PY
    ! grep -q '"status": "failed"' "$OUT/steps.jsonl"
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
