"""Backbone adapters: forward hooks on a TTS model under teacher forcing (Qwen3-TTS).

- `checkpoint.py`: find a checkpoint (folder, Hugging Face cache, one hub probe), check the options
  against its config.json before any weight loads, load it;
- `runtime.py`: device, dtype and attention as resolved on this machine (`BackboneRuntime`);
- `huggingface.py`: the adapter (`HuggingFaceBackboneAdapter(BackboneConfig)`): one teacher-forced
  pass per batch, every layer captured by hooks (`base.py`), OOM back-off;
- `qwen3_tts.py`: layer aliases and the teacher-forced input layout;
- `synthetic.py` / `released.py`: random models of the real classes (the tiny one; the released
  configurations, `qwen3_tts_configs/`), in memory or as checkpoint folders.

Heavy imports (torch, transformers, qwen_tts) happen when the submodules are imported, not here;
nothing here imports `stage1_5.features`.
"""
