"""The `qwen_tts` package as the Qwen3-TTS family and its random models import it: quietly, lazily."""

from __future__ import annotations

SAMPLE_RATE = 24000
"""Qwen3-TTS audio rate (speech tokenizer and speaker encoder)."""


def import_qwen_tts():
    """`import qwen_tts` without its import-time noise.

    qwen_tts prints a "flash-attn is not installed" banner on stdout, and the `sox` package it imports
    runs `sox -h` through a shell (whose "sox: not found" goes to fd 2) and logs a warning; none of it
    matters for probing, which never calls SoX.
    """
    import contextlib
    import io
    import logging
    import os
    import sys

    if "qwen_tts" not in sys.modules:
        logging.getLogger("sox").setLevel(logging.ERROR)
        saved_fd2 = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()):
                os.dup2(devnull.fileno(), 2)
                import qwen_tts  # noqa: F401
        finally:
            os.dup2(saved_fd2, 2)
            os.close(saved_fd2)
    return sys.modules["qwen_tts"]
