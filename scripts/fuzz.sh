#!/usr/bin/env bash
# The fuzz targets of tests/tests/fuzz.rs with many more inputs than CI's 256 per target.
#
#   bash scripts/fuzz.sh [CASES]      # default 20000 per target
set -euo pipefail
cd "$(dirname "$0")/.."
PROPTEST_CASES=${1:-20000} cargo test -p calib-e2e --test fuzz -- --test-threads 1
