#!/usr/bin/env bash
# The paper's grid on Multi30k (the CPU-sized translation task): networks transformer-small; losses ce ls:0.1 focal:1 flsd:53.
# Options (--data, --device, --epochs, --set, --slurm, …): see recipes/paper.sh.
exec "$(dirname "$0")/../paper.sh" multi30k "transformer-small" "ce ls:0.1 focal:1 flsd:53" "$@"
