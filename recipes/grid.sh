#!/usr/bin/env bash
# The paper's grid of losses for one recipe: trains each, evaluates each, and writes the comparison table
# (report.md: error, NLL, ECE, AdaECE, classwise-ECE before and after temperature scaling, T, bootstrap intervals).
#
#   recipes/grid.sh recipes/cifar10/resnet50.toml runs/cifar10-resnet50 --data ../shared/data --device cuda
#
# Each run is evaluated at its last epoch, as the official evaluation scripts do (CHECKPOINT=best for the checkpoint of
# lowest validation error). Extra arguments go to `calib train`. On a Slurm cluster run one loss per array task:
#   sbatch --array=0-8 --wrap "recipes/grid.sh RECIPE OUT --only \$SLURM_ARRAY_TASK_ID …"
set -euo pipefail
recipe=$1 out=$2; shift 2
only=""
if [ "${1:-}" = "--only" ]; then only=$2; shift 2; fi
calib=${CALIB:-target/release/calib}
checkpoint=${CHECKPOINT:-last}
losses=(ce brier mmce:2 ls:0.05 focal:1 focal:2 focal:3 flsc:531 flsd:53)
preds=()
for i in "${!losses[@]}"; do
  loss=${losses[$i]}
  name=$(echo "$loss" | tr ':' '-')
  if [ -z "$only" ] || [ "$only" = "$i" ]; then
    if [ -f "$out/$name/state.json" ]; then resume=(--resume); else resume=(); fi
    "$calib" train --recipe "$recipe" --loss "$loss" --out "$out/$name" "${resume[@]}" "$@"
    "$calib" eval --run "$out/$name" --checkpoint "$checkpoint"
  fi
  preds+=(--predictions "$out/$name/predictions")
done
if [ -z "$only" ]; then
  "$calib" report "${preds[@]}" --out "$out"
fi
