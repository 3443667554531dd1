#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.sh installs on the GPU machine (Python 3.12, x86-64
# manylinux) into .whl/ (ignored by git; name it in the device call's `carry`). Run on a machine with PyPI.
#   bash benchmarks/gpu_check_wheels.sh [DEST]      # default DEST: .whl
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
mkdir -p "$DEST"
grep -v '^\s*#' benchmarks/gpu_check_wheels.txt | sed 's/#.*//' | awk 'NF {print $1}' | while read -r spec; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$DEST" "$spec"
done
du -sh "$DEST"
ls "$DEST"
