"""stage1_5: probe a TTS backbone for regional accent before LoRA training."""

__version__ = "0.1.0"
