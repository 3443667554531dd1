"""espeak-ng speech through the PyPI `espeakng-loader` library (ctypes; no system package needed).

espeak-ng keeps global state, so one `Espeak` per process (`espeak()`), used under a lock. Accents
are espeak language variants; pseudo-speakers are voice variants (`+m1`, `+f2`, ...) with pitch,
rate and intonation-range offsets.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from stage1_5.errors import DatasetError

ACCENT_VOICES: dict[str, dict[str, str]] = {
    "en": {
        "en-us": "en-us",
        "en-gb": "en",
        "en-gb-scotland": "en-gb-scotland",
        "en-029": "en-029",
        "en-us-nyc": "en-us-nyc",
        "en-gb-x-rp": "en-gb-x-rp",
        "en-gb-x-gbclan": "en-gb-x-gbclan",
        "en-gb-x-gbcwmd": "en-gb-x-gbcwmd",
    },
    "pt": {"pt-br": "pt-br", "pt": "pt"},
}
"""language -> accent tag (as written in metadata.csv) -> espeak voice name."""

VOICE_VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "m8")
"""espeak voice variants (pitch range and formant scaling): the base of each pseudo-speaker."""

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class EspeakVoice:
    """One pseudo-speaker: voice (accent) + variant, with espeak's rate (words/min), pitch and range (0-100)."""

    voice: str
    variant: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    @property
    def name(self) -> str:
        return f"{self.voice}+{self.variant}"


class Espeak:
    """Synchronous espeak-ng: `synth(text, voice)` returns float32 samples at `sample_rate`."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise DatasetError(f"espeak-ng failed to initialise (library {espeakng_loader.get_library_path()})")
        self.sample_rate = int(rate)
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the library may call it
        lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    def _collect(self, wav, n_samples, _events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def synth(self, text: str, voice: EspeakVoice, seed: int = 0) -> np.ndarray:
        """Speak `text`; `seed` fixes espeak's noise generator (breathy variants), so output is reproducible."""
        with self._lock:
            self._lib.espeak_ng_SetRandSeed(int(seed))
            if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise DatasetError(f"espeak-ng has no voice {voice.name!r}")
            for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.pitch_range)):
                self._lib.espeak_SetParameter(param, int(value), 0)
            data = text.encode("utf-8") + b"\0"
            self._chunks = []
            status = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise DatasetError(f"espeak-ng failed (status {status}) on {text!r} with voice {voice.name}")
            chunks, self._chunks = self._chunks, []
        wav = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return wav.astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def espeak() -> Espeak:
    """The process-wide engine (espeak-ng cannot be initialised twice with different state)."""
    return Espeak()
