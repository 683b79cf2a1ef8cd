#!/usr/bin/env bash
# The paper's grid for one dataset: every loss × every network of recipes/DATASET, each trained, evaluated at its last
# epoch (as the official evaluation scripts do) and gathered by `calib report` into the paper's tables and figures.
# Each dataset's recipes/DATASET/paper.sh calls this with its networks and losses; use those:
#
#   recipes/cifar10/paper.sh --data ../shared/data --device cuda                 # the whole grid here, then the report
#   recipes/cifar10/paper.sh --epochs 2 --set train.max_batches=10 --losses "ce flsd:53"   # a short CPU run
#   recipes/cifar10/paper.sh --slurm --partition gpu --time 24:00:00 --data /datasets    # write Slurm jobs, then submit
#
# Options:
#   --out DIR            where runs and the report go (default runs/paper/DATASET): DIR/NETWORK/LOSS, DIR/report
#   --data DIR           the data folder (recipe's data.dir); --device cpu|cuda|cuda:N; --epochs N (short on CPU)
#   --set KEY=VALUE      a recipe override for every run (repeatable); --ood NAME=PATH an OOD set for `calib eval`
#   --losses "A B …"     instead of the paper's losses; --networks "A B …" instead of the dataset's networks
#   --cell I             only grid cell I (0-based, network-major), without the report: what each array task runs
#   --report             only the report of what has been evaluated
#   --checkpoint NAME    the checkpoint evaluated (default last; best is the one of lowest validation error)
#   --bootstrap N        resamples of `calib eval`'s intervals (its default unless given; short runs)
#   --study-t GRID       translation: the temperatures of `calib study temperature` (default 0.5:2.0:0.1), which every
#                        translation cell runs after `calib eval` for Table K.1 and Figure K.1; --study-limit N: only
#                        the first N test sentences (short runs)
#   --slurm              write DIR/slurm/{array,report}.sbatch and DIR/slurm/submit.sh instead of running: an array
#                        of one task per cell (each resumable: a restarted task continues its run) and a report job
#                        that starts when every task has succeeded. --partition, --time, --gpus, --cpus, --mem set
#                        the #SBATCH lines.
# CALIB names the binary (default target/release/calib).
set -euo pipefail

die() { echo "paper.sh: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: recipes/paper.sh DATASET NETWORKS LOSSES [options] (use recipes/DATASET/paper.sh)"
dataset=$1 networks=$2 losses=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$here/$dataset" ] || die "no recipes/$dataset"
calib=${CALIB:-target/release/calib}
out=runs/paper/$dataset checkpoint=last cell="" report_only=0 slurm=0
partition="" time_limit="" gpus="" cpus=8 mem=""
train_args=() eval_args=() study_args=() study_t=0.5:2.0:0.1 forward=()
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --out|--data|--device|--epochs|--set|--ood|--losses|--networks|--cell|--checkpoint|--bootstrap|--study-t|--study-limit|--partition|--time|--gpus|--cpus|--mem)
      [ $# -ge 2 ] || die "$opt needs a value";;
  esac
  case $opt in
    --out) out=$2;;
    --data|--device|--epochs) train_args+=("$opt" "$2"); forward+=("$opt" "$2")
      [ "$opt" = --device ] && eval_args+=("$opt" "$2") && study_args+=("$opt" "$2");;
    --bootstrap) eval_args+=(--bootstrap "$2"); forward+=("$opt" "$2");;
    --study-t) study_t=$2; forward+=("$opt" "$2");;
    --study-limit) study_args+=(--limit "$2"); forward+=("$opt" "$2");;
    --set) train_args+=(--set "$2"); forward+=(--set "$2");;
    --ood) eval_args+=(--ood "$2"); forward+=(--ood "$2");;
    --losses) losses=$2;;
    --networks) networks=$2;;
    --cell) cell=$2;;
    --checkpoint) checkpoint=$2;;
    --report) report_only=1; shift; continue;;
    --slurm) slurm=1; shift; continue;;
    --partition) partition=$2;;
    --time) time_limit=$2;;
    --gpus) gpus=$2;;
    --cpus) cpus=$2;;
    --mem) mem=$2;;
    *) die "unknown option $opt";;
  esac
  shift 2
done
read -r -a nets <<<"$networks"
read -r -a loss_list <<<"$losses"
cells=$(( ${#nets[@]} * ${#loss_list[@]} ))
[ "$cells" -gt 0 ] || die "no networks or no losses"
for n in "${nets[@]}"; do [ -f "$here/$dataset/$n.toml" ] || die "no recipe recipes/$dataset/$n.toml"; done

# One cell: train (resuming what a killed task left), then evaluate.
run_cell() {
  local i=$1
  [[ $i =~ ^[0-9]+$ ]] && [ "$i" -lt "$cells" ] || die "--cell $i: the grid has cells 0 to $((cells - 1))"
  local net=${nets[$((i / ${#loss_list[@]}))]} loss=${loss_list[$((i % ${#loss_list[@]}))]}
  local dir=$out/$net/${loss//:/-} resume=()
  [ -f "$dir/state.json" ] && resume=(--resume)
  echo "paper.sh: cell $i of $cells: $dataset $net $loss → $dir" >&2
  # The test split probed every epoch: the test curves of Figures 1–2 and Table J.1's early-stopping rows.
  "$calib" train --recipe "$here/$dataset/$net.toml" --loss "$loss" --out "$dir" ${resume[@]+"${resume[@]}"} \
    --set train.probe_test=true ${train_args[@]+"${train_args[@]}"}
  "$calib" eval --run "$dir" --checkpoint "$checkpoint" ${eval_args[@]+"${eval_args[@]}"}
  # Translation: test BLEU and validation ECE against T on the recipe's own pairs (Table K.1, Figure K.1).
  if grep -q '^task = "translation"' "$here/$dataset/$net.toml"; then
    "$calib" study temperature --run "$dir" --checkpoint "$checkpoint" --t "$study_t" --quiet \
      ${study_args[@]+"${study_args[@]}"}
  fi
}

report() { "$calib" report "$out" --out "$out/report"; }

if [ "$slurm" = 1 ]; then
  s=$out/slurm
  mkdir -p "$s"
  q() { local s; s=$(printf '%q ' "$@"); printf '%s' "${s% }"; }
  common="#SBATCH --cpus-per-task=$cpus"
  [ -n "$partition" ] && common+=$'\n'"#SBATCH --partition=$partition"
  [ -n "$time_limit" ] && common+=$'\n'"#SBATCH --time=$time_limit"
  [ -n "$mem" ] && common+=$'\n'"#SBATCH --mem=$mem"
  gpu_line=""
  [ -n "$gpus" ] && gpu_line="#SBATCH --gpus=$gpus"
  me=$(q "$here/paper.sh" "$dataset" "$networks" "$losses")
  rest=$(q --out "$out" --checkpoint "$checkpoint" ${forward[@]+"${forward[@]}"})
  cat >"$s/array.sbatch" <<EOF
#!/usr/bin/env bash
#SBATCH --job-name=calib-$dataset
#SBATCH --array=0-$((cells - 1))
#SBATCH --output=$out/slurm/cell-%a.log
$common
$gpu_line
# One grid cell per task ($cells cells: ${#nets[@]} networks × ${#loss_list[@]} losses); a requeued task resumes its run.
set -euo pipefail
cd $(q "$PWD")
export CALIB=$(q "$calib")
$me $rest --cell "\$SLURM_ARRAY_TASK_ID"
EOF
  cat >"$s/report.sbatch" <<EOF
#!/usr/bin/env bash
#SBATCH --job-name=calib-$dataset-report
#SBATCH --output=$out/slurm/report.log
$common
# The paper's tables and figures of every evaluated cell.
set -euo pipefail
cd $(q "$PWD")
export CALIB=$(q "$calib")
$me $rest --report
EOF
  cat >"$s/submit.sh" <<EOF
#!/usr/bin/env bash
# Submits the grid's array, then its report job, which waits for every task to succeed.
set -euo pipefail
array=\$(sbatch --parsable $(q "$s/array.sbatch"))
sbatch --dependency=afterok:\${array%%;*} $(q "$s/report.sbatch")
EOF
  chmod +x "$s/submit.sh"
  echo "paper.sh: wrote $s/array.sbatch ($cells tasks), $s/report.sbatch and $s/submit.sh; run $s/submit.sh" >&2
  exit 0
fi

if [ "$report_only" = 1 ]; then report; exit 0; fi
if [ -n "$cell" ]; then run_cell "$cell"; exit 0; fi
for ((i = 0; i < cells; i++)); do run_cell "$i"; done
report
