#!/usr/bin/env bash
# Builds the shims that link libtorch_cuda.so into target/<profile>/, beside the calib binaries
# that load them:
#   libcalib_nccl.so       the NCCL half of the data-parallel shim (crates/calib-dist/cpp/shim.cpp
#                          compiled with CALIB_NCCL);
#   libcalib_cudagraph.so  CUDA-graph capture of the training step (crates/calib-train/cpp/cuda_graph.cpp).
#
# They are separate libraries that calib loads only once CUDA is loaded (a CPU machine never needs
# them). ProcessGroupNCCL's and ATen's CUDA headers pull in NCCL's and the CUDA libraries'
# headers; they come from the PyPI wheels torch 2.11.0 is built against, of which only the
# include/ folders are unpacked (into .deps/cuda-headers). Usage:
#   scripts/build-cuda-shims.sh [release|debug]
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-release}
DEPS=.deps
HEADERS=$DEPS/cuda-headers
# nccl.h; crt/host_config.h and <nv/target> (included by cuda_runtime.h and cuda_fp16.h); the
# cuBLAS, cuSPARSE and cuSOLVER handles ATen's CUDA context declares.
WHEELS=(nvidia-nccl-cu13==2.28.9 nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3
  nvidia-cusparse==12.6.3.3 nvidia-cusolver==12.0.4.66)
STAMP=$HEADERS/.installed-1
[ -f "$DEPS/libtorch/.installed-2.11.0" ] || { echo "build-cuda-shims: run scripts/setup.sh first" >&2; exit 1; }
if [ ! -f "$STAMP" ]; then
  echo "build-cuda-shims: fetching the headers of NCCL and CUDA's libraries (about 900 MB of wheels, once)" >&2
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$DEPS/wheels" "${WHEELS[@]}"
  rm -rf "$HEADERS"
  python3 - "$DEPS/wheels" "$HEADERS" "${WHEELS[@]}" <<'PY'
import pathlib, sys, zipfile
wheels, out, specs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
for spec in specs:
    name, version = spec.split("==")
    [wheel] = wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(out, [m for m in z.namelist() if "/include/" in m])
PY
  touch "$STAMP"
fi
INCLUDES=()
for dir in "$HEADERS"/nvidia/*/include; do INCLUDES+=(-I"$dir"); done
mkdir -p "target/$PROFILE"
build() { # OUT SOURCE [DEFINES...]
  local out=target/$PROFILE/$1 source=$2
  shift 2
  g++ -std=c++17 -O2 -shared -fPIC -w "$@" -D_GLIBCXX_USE_CXX11_ABI=1 \
    -Icrates/calib-train/cpp -I"$DEPS/libtorch/include" -I"$DEPS/libtorch/include/torch/csrc/api/include" \
    -I"$DEPS/site/nvidia/cu13/include" "${INCLUDES[@]}" \
    "$source" -o "$out.tmp" \
    -L"$DEPS/site/torch/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10
  mv "$out.tmp" "$out"
  echo "build-cuda-shims: $out" >&2
}
build libcalib_nccl.so crates/calib-dist/cpp/shim.cpp -DCALIB_NCCL -DUSE_C10D_NCCL &
nccl=$!
build libcalib_cudagraph.so crates/calib-train/cpp/cuda_graph.cpp &
graph=$!
wait "$nccl"
wait "$graph"
