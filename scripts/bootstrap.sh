#!/usr/bin/env bash
# Create .venv (if missing) and install everything stage1_5 needs. Idempotent: a second run is quick.
# CPU machines get torch==2.13.0 (CPU wheel) first, so that qwen-tts does not pull a CUDA build;
# on a CUDA machine the default torch wheel is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.stage1_5-installed
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
hash_inputs=$(cat pyproject.toml scripts/bootstrap.sh scripts/fix_torchaudio.py | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash_inputs" ]; then
    exit 0
fi
echo "[setup] installing dependencies into $VENV (first run takes a few minutes)"
"$VPY" -m pip install -q --upgrade pip
if ! "$VPY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        "$VPY" -m pip install -q torch
    else
        "$VPY" -m pip install -q "torch==2.13.0"
    fi
fi
"$VPY" -m pip install -q -e ".[test]"
"$VPY" scripts/fix_torchaudio.py
"$VPY" -c "import qwen_tts, speechbrain, transformers, sklearn, stage1_5" >/dev/null 2>&1 || {
    echo "[setup] import check failed:"; "$VPY" -c "import qwen_tts, speechbrain, transformers, sklearn, stage1_5"; exit 1; }
echo "$hash_inputs" > "$STAMP"
echo "[setup] done"
