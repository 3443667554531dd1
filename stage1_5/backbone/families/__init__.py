"""Backbone families, one file each (`stage1_5.backbone.family` has the protocol and the registry).

- `qwen3_tts.py`: Qwen3-TTS 12 Hz (talker + code predictor + speech tokenizer), through `qwen_tts`;
  `qwen_tts_package.py` imports that package quietly for it and for its random models (`synthetic.py`).
"""
