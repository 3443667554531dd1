"""Stage 2 handoff: where and how to train accent control, from a finished Stage 1.5 run.

- `directions`: the frozen accent probe, class means and LDA basis per backbone layer, in the layer's
  feature space (`load_directions(run_dir)`);
- `erasure`: LEACE concept erasure, speaker-disjoint (is speaker identity on the accent axis? does
  accent survive erasing within-accent speaker contrasts?);
- `similarity`: linear CKA between every pair of layers and references;
- `monitor`: `AccentMonitor` / `AccentMonitorCallback`, the frozen probe read while a model trains
  (imported on first use: it pulls in transformers' Trainer machinery);
- `analysis`: the pipeline's `stage2` stage (`compute_stage2`, `save_stage2`).
"""

from stage1_5.stage2.analysis import Stage2Result, compute_stage2, save_stage2
from stage1_5.stage2.directions import AccentDirections, LayerDirections, load_directions
from stage1_5.stage2.erasure import ERASURE_COLUMNS, erasure_metrics
from stage1_5.stage2.similarity import cka_matrix, linear_cka

_MONITOR = ("AccentMonitor", "AccentMonitorCallback", "MonitorReading")

__all__ = [
    "ERASURE_COLUMNS",
    "AccentDirections",
    "LayerDirections",
    "Stage2Result",
    "cka_matrix",
    "compute_stage2",
    "erasure_metrics",
    "linear_cka",
    "load_directions",
    "save_stage2",
    *_MONITOR,
]


def __getattr__(name: str):
    if name in _MONITOR:
        from stage1_5.stage2 import monitor

        return getattr(monitor, name)
    raise AttributeError(f"module 'stage1_5.stage2' has no attribute {name!r}")
