"""stage1_5: probe a TTS backbone for regional accent before LoRA training."""

__version__ = "0.1.0"

from stage1_5.runtime import prepare_openmp  # noqa: E402  (before anything imports torch: sleeping OpenMP waits)

prepare_openmp()
