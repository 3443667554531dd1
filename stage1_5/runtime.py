"""Process-level runtime settings for CPU work."""

from __future__ import annotations

import os


def configure_torch_threads() -> int:
    """Use one intra-op thread per physical core, capped at 8 (small forwards on CPU slow down a lot
    when torch oversubscribes); `STAGE1_5_THREADS` overrides. Returns the number set."""
    import torch

    wanted = int(os.environ.get("STAGE1_5_THREADS", "0")) or min(8, os.cpu_count() or 1)
    torch.set_num_threads(wanted)
    return wanted
