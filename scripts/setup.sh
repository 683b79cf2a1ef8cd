#!/usr/bin/env bash
# One-time, idempotent set-up on a fresh Debian machine that has Rust and Python 3.
#
# libtorch comes from PyPI (the torch 2.11.0 wheel that matches tch 0.24.0), installed with
# `pip --no-deps` into the git-ignored folder .deps/. `LIBTORCH` (set by .cargo/config.toml)
# points at .deps/libtorch, whose lib/ holds only the CPU libraries: torch-sys then links no
# CUDA library, so the same binary runs on a CPU-only machine and, on a GPU machine, loads
# libtorch_cuda.so at run time (crates/calib-train/src/device.rs; docs/setup.md).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PKGS=(torch==$TORCH_VERSION nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85)
DEPS=.deps
STAMP=$DEPS/libtorch/.installed-$TORCH_VERSION

if [ ! -f "$STAMP" ]; then
  command -v python3 >/dev/null || { echo "setup: python3 is required (to fetch libtorch from PyPI)" >&2; exit 1; }
  command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
  echo "setup: fetching libtorch $TORCH_VERSION from PyPI into $DEPS/ (about 550 MB, once)" >&2
  mkdir -p "$DEPS/wheels"
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$DEPS/wheels" "${PKGS[@]}"
  rm -rf "$DEPS/site" "$DEPS/libtorch"
  python3 -m pip install --quiet --no-deps --no-index --find-links "$DEPS/wheels" --target "$DEPS/site" "${PKGS[@]}"
  mkdir -p "$DEPS/libtorch/lib"
  ln -sfn ../site/torch/include "$DEPS/libtorch/include"
  for lib in libtorch_cpu.so libtorch.so libc10.so libgomp.so.1; do
    ln -sfn "../../site/torch/lib/$lib" "$DEPS/libtorch/lib/$lib"
  done
  # libtorch_cpu.so finds libcudart/libcupti through its RPATH $ORIGIN/../../nvidia/cu13/lib; this
  # link makes that path resolve whether $ORIGIN is read through the symlink or not.
  ln -sfn site/nvidia "$DEPS/nvidia"
  touch "$STAMP"
fi

# Gloo's headers for the data-parallel shim (crates/calib-dist): the c10d code is in libtorch_cpu.so,
# but the wheel ships c10d's headers without Gloo's. Debian's libgloo-dev has them.
if [ ! -f /usr/include/gloo/config.h ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing libgloo-dev (Gloo's headers, for data-parallel training)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgloo-dev >/dev/null
  else
    echo "setup: Gloo's headers are missing: install Debian's libgloo-dev (sudo apt-get install libgloo-dev)" >&2
    exit 1
  fi
fi
