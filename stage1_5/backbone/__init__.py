"""Backbone adapters: forward hooks on a TTS model under teacher forcing (Qwen3-TTS).

Heavy imports (torch, transformers, qwen_tts) happen when `huggingface` / `qwen3_tts` are imported,
not here.
"""
