"""Make torchaudio importable on a CPU-only torch (see shared notes: qwen3_tts.md, Install).

PyPI's torchaudio is a CUDA build whose compiled extension needs libc10_cuda.so. On a CPU-only torch
`import torchaudio` then fails, and with it `import qwen_tts`. Removing the compiled extension makes
torchaudio fall back to pure Python (kaldi fbank, resample and MelSpectrogram keep working).
Applied only when torch has no CUDA and the import fails; running it twice changes nothing.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path


def torchaudio_imports() -> bool:
    result = subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True, text=True)
    return result.returncode == 0


def main() -> int:
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        return 0
    import torch

    if torch.cuda.is_available() or torchaudio_imports():
        return 0
    lib_dir = Path(spec.origin).parent / "lib"
    removed = sorted(lib_dir.glob("*.so"))
    for so in removed:
        so.unlink()
    if not torchaudio_imports():
        print("[setup] torchaudio still fails to import after removing its CUDA extension", file=sys.stderr)
        return 1
    print(f"[setup] torchaudio: removed {len(removed)} CUDA extension file(s) from {lib_dir}; pure-Python fallback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
