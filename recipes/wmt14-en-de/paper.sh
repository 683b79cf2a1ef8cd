#!/usr/bin/env bash
# The paper's grid on WMT14 En-De: networks transformer-base; losses ce ls:0.1 focal:1 flsd:53.
# Options (--data, --device, --epochs, --set, --slurm, …): see recipes/paper.sh.
exec "$(dirname "$0")/../paper.sh" wmt14-en-de "transformer-base" "ce ls:0.1 focal:1 flsd:53" "$@"
