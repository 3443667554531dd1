#!/usr/bin/env bash
# Install everything stage1_5 needs. Idempotent: a second run is quick.
#
#   bash scripts/bootstrap.sh            # a .venv (created if missing), for make demo / make test / CI
#   bash scripts/bootstrap.sh --colab    # Colab (also picked when COLAB_RELEASE_TAG is set): no venv; installs
#                                        # into the runtime's own Python and keeps its CUDA torch, torchaudio,
#                                        # torchvision and triton exactly as they are (pip constraints)
#   add --dry-run to print the pip commands (and the constraints) instead of running them
#
# In a venv, CPU machines get torch==2.13.0 (CPU wheel) first, so that qwen-tts does not pull a CUDA
# build; on a CUDA machine the default torch wheel is used.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=venv
DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --colab) MODE=system ;;
        --dry-run) DRY_RUN=1 ;;
        *) echo "[setup] unknown option $arg (use --colab, --dry-run)" >&2; exit 2 ;;
    esac
done
if [ -n "${COLAB_RELEASE_TAG:-}" ]; then MODE=system; fi

run() {
    if [ "$DRY_RUN" = 1 ]; then echo "+ $*"; else "$@"; fi
}

hash_inputs=$(cat pyproject.toml scripts/bootstrap.sh scripts/fix_torchaudio.py | sha256sum | cut -c1-16)

if [ "$MODE" = system ]; then
    PY=${PYTHON:-python3}
    if ! "$PY" -c "import torch" 2>/dev/null; then
        echo "[setup] --colab installs into the runtime's Python, which must already have torch ($PY cannot import it)" >&2
        exit 1
    fi
    constraints=$(mktemp)
    # pin what the runtime ships, so that no dependency replaces its CUDA build
    "$PY" - > "$constraints" <<'PYEOF'
import importlib.metadata as md
for name in ("torch", "torchaudio", "torchvision", "triton"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
PYEOF
    echo "[setup] installing into $("$PY" -c 'import sys; print(sys.executable)') (no venv); keeping: $(tr '\n' ' ' < "$constraints")"
    run "$PY" -m pip install -q -c "$constraints" -e ".[test]"
    if [ "$DRY_RUN" = 1 ]; then cat "$constraints"; rm -f "$constraints"; exit 0; fi
    rm -f "$constraints"
    "$PY" -c "import qwen_tts, speechbrain, transformers, sklearn, stage1_5" >/dev/null 2>&1 || {
        echo "[setup] import check failed:"; "$PY" -c "import qwen_tts, speechbrain, transformers, sklearn, stage1_5"; exit 1; }
    "$PY" -c "import torch; print('[setup] torch', torch.__version__, '| CUDA:', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
    echo "[setup] done"
    exit 0
fi

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.stage1_5-installed
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    run "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash_inputs" ] && [ "$DRY_RUN" = 0 ]; then
    exit 0
fi
echo "[setup] installing dependencies into $VENV (first run takes a few minutes)"
run "$VPY" -m pip install -q --upgrade pip
if ! "$VPY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        run "$VPY" -m pip install -q torch
    else
        run "$VPY" -m pip install -q "torch==2.13.0"
    fi
fi
run "$VPY" -m pip install -q -e ".[test]"
if [ "$DRY_RUN" = 1 ]; then exit 0; fi
"$VPY" scripts/fix_torchaudio.py
"$VPY" -c "import qwen_tts, speechbrain, transformers, sklearn, stage1_5" >/dev/null 2>&1 || {
    echo "[setup] import check failed:"; "$VPY" -c "import qwen_tts, speechbrain, transformers, sklearn, stage1_5"; exit 1; }
echo "$hash_inputs" > "$STAMP"
echo "[setup] done"
