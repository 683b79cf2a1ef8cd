#!/usr/bin/env bash
# Idempotent set-up of the Python environment for the peer scripts in benches/ (compare_metrics.py,
# compare_mt_train.py, compare_train.py, compare_decode.py, compare_calibrators.py): a venv at .deps/bench-venv (git-ignored) with numpy,
# torch 2.11.0 (CPU use only), torchmetrics, Hugging Face tokenizers (to read our tokenizer.json) and transformers
# (the Marian model compare_decode.py exports a run into).
#
#   bash benches/setup-python.sh            # once; re-running is a quick no-op
#   .deps/bench-venv/bin/python benches/compare_metrics.py --calib target/release/calib
#
# What was found to work (torch 2.11.0+cu130 from PyPI, Python 3.11, Linux x86_64, no GPU):
# - Only PyPI is reachable, so there is no CPU-only torch wheel; the PyPI wheel is a CUDA 13 build.
#   `--find-links .deps/wheels` reuses the 531 MB wheel that scripts/setup.sh already downloaded
#   (if it is absent, pip downloads it from PyPI).
# - torch alone (`--no-deps`) plus its pure-Python deps is NOT enough: libtorch.so and torch/_C
#   link libtorch_cuda.so, which needs at load time (readelf NEEDED; `import torch` fails with
#   "ValueError: libcublasLt.so.*[0-9] not found in the system path" otherwise):
#   cudart, cupti, cublas(+Lt), cufft, cufile, curand, cusparse (-> nvjitlink), cusparseLt, nccl,
#   cudnn, nvshmem. These are installed below (downloads ~1.7 GB, ~2.2 GB on disk).
# - NOT needed for `import torch` and the CPU benchmark, so left out (~0.6 GB of downloads saved):
#   triton, cuda-bindings/cuda-pathfinder, nvidia-cusolver (only libtorch_cuda_linalg.so, loaded
#   lazily), nvidia-cuda-nvrtc (libcaffe2_nvrtc.so, lazy), nvidia-nvtx. torch is therefore
#   installed with --no-deps, and pip reports triton and cuda-bindings as "not installed"
#   dependency conflicts: harmless.
# - torchmetrics is installed with --no-deps too, plus its deps (lightning-utilities, packaging):
#   a plain `pip install torchmetrics` would re-resolve torch's requirements and pull the left-out
#   CUDA packages and triton (torch itself would stay 2.11.0).
# - Resulting venv: ~3.6 GB (torch 1.2 GB, nvidia/* 2.2 GB).  Check: `import torch;
#   torch.randn(3).softmax(0)` works, torch.cuda.is_available() is False on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.deps/bench-venv
WHEELS=.deps/wheels
TORCH_VERSION=2.11.0

# Pure-Python deps of torch (its Requires-Dist minus the CUDA/triton ones), pinned to what was tested.
TORCH_PY_DEPS=(
  "filelock==4.3.1" "typing_extensions==4.16.0" "setuptools>=65,<82" "sympy==1.14.0"
  "networkx==3.6.1" "jinja2==3.1.6" "fsspec==2026.9.0"
)
# The CUDA runtime libraries that libtorch_cuda.so needs to be loaded (versions as torch 2.11.0 pins).
TORCH_CUDA_LIBS=(
  "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusparse,nvjitlink]==13.0.2"
  "nvidia-cudnn-cu13==9.19.0.56"
  "nvidia-cusparselt-cu13==0.8.0"
  "nvidia-nccl-cu13==2.28.9"
  "nvidia-nvshmem-cu13==3.4.5"
)
NUMPY="numpy==2.4.6"
TOKENIZERS="tokenizers==0.23.3"
# compare_decode.py exports a run into a Marian model (its deps: huggingface-hub, pyyaml, regex, safetensors, tqdm, typer;
# not torch, which it leaves alone).
TRANSFORMERS="transformers==5.24.0"
TORCHMETRICS="torchmetrics==1.9.0"
TORCHMETRICS_DEPS=("lightning-utilities==0.15.3" "packaging==26.4")
# The calibration peers of compare_calibrators.py and the reference-vector generators (benches/make_*_vectors.py):
# netcal 1.4.0, relplot 1.0.3 and uncertainty-calibration 0.1.4 (imported as `calibration`). Each is installed with
# --no-deps: netcal's requirements would pull torchvision, pyro-ppl, gpytorch and tensorboard (and re-resolve torch),
# none of which the calibrators used here import; what they do import is pinned in CALIB_PEER_DEPS.
CALIB_PEER_DEPS=(
  "scipy==1.16.3" "scikit-learn==1.7.2" "matplotlib==3.11.2" "tqdm==4.70.1" "pandas==2.3.3" "seaborn==0.13.2"
  "deprecation==2.1.0" "parameterized==0.9.0"
)
CALIB_PEERS=("netcal==1.4.0" "relplot==1.0.3" "uncertainty-calibration==0.1.4")

STAMP="$VENV/.installed-$(cat "$0" | sha256sum | cut -c1-16)"
CHECK='import numpy, tokenizers, torch, torchmetrics, transformers, netcal.binning, relplot, calibration; torch.randn(3).softmax(0); print("bench-venv: numpy", numpy.__version__, "torch", torch.__version__, "torchmetrics", torchmetrics.__version__, "tokenizers", tokenizers.__version__, "transformers", transformers.__version__)'

if [ -f "$STAMP" ] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  echo "setup-python: warning: $PYTHON is not Python 3.11; pins were tested on 3.11 only" >&2

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-python: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check install --quiet)
FL=()
[ -d "$WHEELS" ] && FL=(--find-links "$WHEELS")

echo "setup-python: installing torch $TORCH_VERSION (--no-deps), numpy, torch's pure-Python deps and" \
  "the CUDA runtime libraries that import torch needs (~1.7 GB download, once)" >&2
"${PIP[@]}" "${FL[@]}" --no-deps "torch==$TORCH_VERSION"
echo "setup-python: (a pip 'dependency conflicts' error naming triton and cuda-bindings is expected)" >&2
"${PIP[@]}" "${FL[@]}" "$NUMPY" "${TORCH_PY_DEPS[@]}" "${TORCH_CUDA_LIBS[@]}"
echo "setup-python: installing torchmetrics (--no-deps, so torch's dependencies are not re-resolved)" >&2
"${PIP[@]}" --no-deps "$TORCHMETRICS"
"${PIP[@]}" "${TORCHMETRICS_DEPS[@]}"
"${PIP[@]}" "$TOKENIZERS"
"${PIP[@]}" "$TRANSFORMERS"
echo "setup-python: installing the calibration peers (netcal, relplot, uncertainty-calibration; --no-deps)" >&2
"${PIP[@]}" "${CALIB_PEER_DEPS[@]}"
"${PIP[@]}" --no-deps "${CALIB_PEERS[@]}"

"$VENV/bin/python" -c "$CHECK"
rm -f "$VENV"/.installed-*
touch "$STAMP"
