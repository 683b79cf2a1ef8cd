#!/usr/bin/env bash
# The paper's grid on Tiny-ImageNet: networks resnet50; losses ce brier mmce:2 ls:0.05 focal:1 focal:2 focal:3 flsc:531 flsd:53.
# Options (--data, --device, --epochs, --set, --slurm, …): see recipes/paper.sh.
exec "$(dirname "$0")/../paper.sh" tinyimagenet "resnet50" "ce brier mmce:2 ls:0.05 focal:1 focal:2 focal:3 flsc:531 flsd:53" "$@"
