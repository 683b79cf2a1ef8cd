#!/usr/bin/env bash
# Training-step and decoding speed of two builds on the same machine in the same run (docs/performance.md):
#   bash benches/cpu_before_after.sh BEFORE_DIR AFTER_DIR [OUT_DIR]
# BEFORE_DIR and AFTER_DIR each hold a `calib-torch` binary (e.g. copies of target/release/ from two commits). Every
# measurement runs once per build, alternating, on the same inputs:
#   1. image training: the quickstart recipe (small CNN, 1,200 real CIFAR-10 images), 6 epochs, median samples/s;
#   2. translation training: the Multi30k recipe on its first 3,000 pairs (small Transformer), 1 epoch, target tokens/s;
#   3. beam-4 decoding of 100 Multi30k test sentences with the key/value cache (the run of step 2, trained by AFTER).
# Run from the repository root after scripts/setup.sh; both binaries must read the same run format.
set -euo pipefail
before=$(cd "$1" && pwd) after=$(cd "$2" && pwd) out=${3:-runs/bench-cpu}
rm -rf "$out" && mkdir -p "$out"
# Copied binaries lose their relative RUNPATH: use the project's libtorch.
export LD_LIBRARY_PATH="$PWD/.deps/libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
zcat ../shared/data/multi30k/test_2016_flickr.en.gz | sed -n 1,100p > "$out/test100.en"
mt_sets=(--set data.limit=3000 --set data.vocab_size=2000 --set train.keep_epochs=0)
# The median rate over the epochs after the first (warm-up, caches), or the one epoch's.
rate() { python3 -c "import json,sys,statistics as st; r=[json.loads(l)['samples_per_second'] for l in open(sys.argv[1])]; print(round(st.median(r[1:] or r)))" "$1"; }
# Builds before the explicit `task` key read any recipe with one as translation: give them the image recipe without it.
sed '/^task = "image"$/d' recipes/quickstart/small-cnn.toml > "$out/small-cnn-untagged.toml"
for which in before after; do
  bin=${!which}/calib-torch
  img=recipes/quickstart/small-cnn.toml
  [ "$which" = before ] && img="$out/small-cnn-untagged.toml"
  "$bin" train --recipe "$img" --data data --epochs 6 --out "$out/img-$which" --device cpu --quiet >/dev/null
  "$bin" train --recipe recipes/multi30k/transformer-small.toml --epochs 1 "${mt_sets[@]}" --out "$out/mt-$which" \
    --device cpu --quiet >/dev/null
  echo "$which: image training $(rate "$out/img-$which/metrics.jsonl") samples/s (median of epochs 2-6)," \
    "translation training $(rate "$out/mt-$which/metrics.jsonl") target tokens/s"
done
for which in before after; do
  bin=${!which}/calib-torch
  "$bin" bench-decode --run "$out/mt-after" --src "$out/test100.en" --limit 100 --beam 4 --device cpu --format json \
    > "$out/decode-$which.json"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2]+': decoding', round(d['cached_sentences_per_second'],2), 'sentences/s cached,', round(d['uncached_sentences_per_second'],2), 'uncached,', d['identical_translations'], 'identical')" "$out/decode-$which.json" "$which"
done
