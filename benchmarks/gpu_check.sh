#!/usr/bin/env bash
# Device check for real conditions (issue 12): the released 1.7B Base with random bf16 weights on a CUDA
# GPU, extraction of 720 x 4 s utterances with the 8 configured layers, the OOM back-off, the probe
# engine on CUDA vs the CPU cores. One call of at most 8 minutes; writes $OUT/gpu_check.json and
# $OUT/gpu_check.log. See benchmarks/gpu_check.py for the steps.
#
#   bash benchmarks/gpu_check.sh                # on the GPU machine (packages it lacks carried in .whl/)
#   bash benchmarks/gpu_check.sh --reduced      # anywhere (CPU too): the same steps at toy size
#
# From a session with a device: `bash benchmarks/gpu_check_wheels.sh` here once, then the device tool's
# run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540): installing the wheels takes
# ~30 s, the check itself is capped at 430 s (steps that would start after 400 s are skipped and say so).
#
# The GPU machine has torch but not the project's pins (transformers==4.57.3, qwen-tts, ...):
# benchmarks/gpu_check_wheels.sh downloads them into .whl/ (ignored by git) on a machine with PyPI;
# this script installs them into /tmp/site ahead of the image's own packages.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 OUT
timeout --signal=INT --kill-after=10 430 "$PYTHON" benchmarks/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
