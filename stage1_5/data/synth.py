"""Synthetic accented datasets with a known truth (`stage1_5 dataset synth`).

- `procedural`: numpy-only speech-like audio. A harmonic source (per-speaker f0) is shaped by
  formant resonances that move through a per-text vowel sequence, under a syllable-rate envelope
  with noise-burst consonants. Speakers differ in f0, vocal-tract length (formant scaling) and
  spectral tilt; each accent gets a planted cue (formant shift + spectral tilt, the same for all its
  speakers) whose size is `strength` (0 = no accent signal at all).
- `espeak`: real synthetic speech from espeak-ng (accent = language variant, speaker = voice
  variant + pitch/rate/range offsets, texts = a shared sentence list).

Both write the user guide's layout (metadata.csv with rel_path relative to wav/, texts.json,
wav/<speaker>/<text>.<ext>) plus `synth.json`, the parameters that generated the set.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from pydantic import ConfigDict, Field, model_validator

from stage1_5.config import StrictModel
from stage1_5.data.espeak import ACCENT_VOICES, VOICE_VARIANTS, EspeakVoice, espeak
from stage1_5.data.layout import AUDIO_DIR, METADATA, TEXTS, write_metadata, write_texts
from stage1_5.errors import DatasetError
from stage1_5.io import atomic_open, atomic_write_text

SYNTH_JSON = "synth.json"
DEFAULT_STRENGTH = 1.0

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The cat sat on the warm mat.",
        "Please call me after lunch.",
        "We walked along the river today.",
        "Her brother bought a new car.",
        "The water was cold this morning.",
        "Turn left at the next corner.",
        "I can hear the birds outside.",
        "Bring a coat, it might rain.",
        "The train leaves at half past nine.",
        "My neighbour grows tomatoes in the garden.",
        "Could you pass the butter, please?",
        "The children laughed at the funny clown.",
        "He forgot his keys at the office.",
        "We need more bread and milk.",
        "The old house stood on the hill.",
        "She sings in a choir every Sunday.",
        "Our team won the match last night.",
        "The shop closes early on Fridays.",
        "Write your name at the top of the page.",
        "A strong wind blew across the field.",
        "The doctor will see you now.",
        "They painted the fence bright yellow.",
        "I would like a cup of tea.",
        "The path goes down to the harbour.",
        "Dinner is ready in ten minutes.",
        "He read the letter twice before answering.",
        "The dog barked at the postman.",
        "Our flight was delayed by an hour.",
        "Put the books back on the shelf.",
        "The farmer fed the horses at dawn.",
        "It was a bright and sunny afternoon.",
        "The bus stop is across the road.",
        "She lost her glove in the park.",
        "We watched a film about the ocean.",
        "The bridge was closed for repairs.",
        "Father made pancakes for breakfast.",
        "The museum opens at ten o'clock.",
        "Nobody answered the phone all day.",
        "The river flooded after the storm.",
        "Remember to water the plants tomorrow.",
    ),
    "pt": (
        "O gato dormiu no sofá.",
        "Por favor, ligue-me depois do almoço.",
        "Nós caminhamos junto ao rio hoje.",
        "O irmão dela comprou um carro novo.",
        "A água estava fria esta manhã.",
        "Vire à esquerda na próxima esquina.",
        "Consigo ouvir os pássaros lá fora.",
        "Leve um casaco, pode chover.",
        "O comboio parte às nove e meia.",
        "O meu vizinho planta tomates no jardim.",
        "Pode passar-me a manteiga, por favor?",
        "As crianças riram do palhaço engraçado.",
        "Ele esqueceu as chaves no escritório.",
        "Precisamos de mais pão e leite.",
        "A casa velha ficava no alto do morro.",
        "Ela canta num coro todos os domingos.",
        "A nossa equipa ganhou o jogo ontem.",
        "A loja fecha cedo às sextas-feiras.",
        "Escreva o seu nome no topo da página.",
        "Um vento forte soprou sobre o campo.",
        "O médico vai atendê-lo agora.",
        "Eles pintaram a cerca de amarelo.",
        "Eu gostaria de uma chávena de chá.",
        "O caminho desce até ao porto.",
        "O jantar fica pronto em dez minutos.",
        "Ele leu a carta duas vezes.",
        "O cão ladrou ao carteiro.",
        "O nosso voo atrasou uma hora.",
        "Ponha os livros de volta na estante.",
        "O agricultor alimentou os cavalos de madrugada.",
        "Foi uma tarde clara e ensolarada.",
        "A paragem de autocarro fica do outro lado.",
        "Ela perdeu a luva no parque.",
        "Vimos um filme sobre o oceano.",
        "A ponte foi fechada para obras.",
        "O pai fez panquecas ao pequeno-almoço.",
        "O museu abre às dez horas.",
        "Ninguém atendeu o telefone o dia todo.",
        "O rio transbordou depois da tempestade.",
        "Lembre-se de regar as plantas amanhã.",
    ),
}


class SynthConfig(StrictModel):
    """What `stage1_5 dataset synth` makes. `strength` is procedural-only, `language`/`accent_names`
    espeak-only; a bad combination is a validation error naming the option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["procedural", "espeak"] = "procedural"
    accents: int = Field(3, ge=1)
    speakers_per_accent: int = Field(4, ge=1)
    texts: int = Field(8, ge=1)
    seed: int = 0
    strength: Optional[float] = Field(None, ge=0, description=f"Planted accent cue (procedural), 0 = none; None = {DEFAULT_STRENGTH}.")
    language: Optional[str] = Field(None, description="espeak language (en, pt); None = en.")
    accent_names: Optional[tuple[str, ...]] = Field(None, description="espeak accent variants; None = the language's first ones.")
    sample_rate: int = Field(16000, ge=8000)
    audio_format: Literal["wav", "flac"] = "wav"

    @model_validator(mode="after")
    def _engine_options(self) -> "SynthConfig":
        if self.engine == "procedural":
            if self.language is not None or self.accent_names is not None:
                raise ValueError("--language and accent names apply to the espeak engine only")
            return self
        if self.strength is not None:
            raise ValueError("--strength applies to the procedural engine only (espeak accents are real)")
        language = self.language or "en"
        voices = ACCENT_VOICES.get(language)
        if voices is None:
            raise ValueError(f"--language must be one of {', '.join(ACCENT_VOICES)}, got {self.language!r}")
        names = self.accent_names or tuple(voices)[: self.accents]
        unknown = [a for a in names if a not in voices]
        if unknown:
            raise ValueError(f"unknown {language} accent {unknown[0]!r} (known: {', '.join(voices)})")
        if len(names) != self.accents:
            raise ValueError(f"--accents: {self.accents} accents asked, espeak has {len(voices)} for {language} ({', '.join(voices)})")
        if self.texts > len(SENTENCES[language]):
            raise ValueError(f"--texts {self.texts} > the {len(SENTENCES[language])} built-in sentences for espeak")
        return self


@dataclass(frozen=True)
class _Item:
    utt_id: str
    speaker: str
    accent: str
    text_id: str

    def rel_path(self, ext: str) -> str:
        """Relative to wav/, as the user guide writes it."""
        return f"{self.speaker}/{self.text_id}.{ext}"


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one named thing (speaker, text...), stable across runs and Python versions."""
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in key)])


# ----------------------------------------------------------------------------- procedural engine

_VOWELS = np.array(  # F1, F2, F3 (Hz) of ten vowels, adult male averages (Peterson & Barney)
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [660, 1720, 2410],
     [490, 1350, 1690], [570, 840, 2410], [440, 1020, 2240], [640, 1190, 2390], [400, 1920, 2560]],
    dtype=np.float64,
)
_VOWEL_LETTERS = ("a", "i", "u", "e", "ae", "er", "o", "oo", "uh", "ih")
_CONSONANTS = {"s": 5500.0, "sh": 3200.0, "f": 4500.0, "t": 4000.0, "k": 2500.0, "p": 1500.0}
_BANDWIDTHS = np.array([80.0, 110.0, 160.0])
_HOP_S = 0.005


def _procedural_plan(cfg: SynthConfig) -> tuple[dict, dict, dict]:
    """Accent cues, speaker timbres and text contents (all seeded), as JSON-ready dicts."""
    strength = DEFAULT_STRENGTH if cfg.strength is None else cfg.strength
    n = cfg.accents
    grid = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    order = _rng(cfg.seed, "accent-order").permutation(n)
    accents = {}
    for i in range(n):
        # Evenly spaced cues, shuffled between the two dimensions so accents differ in both.
        a, b = grid[i], grid[order[i]]
        accents[f"acc{i + 1:02d}"] = {
            "formant_shift": [0.06 * strength * b, 0.08 * strength * a, 0.04 * strength * a],
            "tilt": 0.4 * strength * b,
        }
    speakers = {}
    for accent in accents:
        for s in range(1, cfg.speakers_per_accent + 1):
            rng = _rng(cfg.seed, "speaker", accent, s)
            female = s % 2 == 0
            speakers[f"{accent}_s{s:02d}"] = {
                "accent": accent,
                "sex": "f" if female else "m",
                "f0": float(rng.uniform(180, 240) if female else rng.uniform(95, 140)),
                "formant_scale": float(rng.uniform(1.06, 1.18) if female else rng.uniform(0.92, 1.04)),
                "tilt": float(rng.uniform(-0.3, 0.3)),
                "rate": float(rng.uniform(0.9, 1.1)),
            }
    texts = {}
    for t in range(1, cfg.texts + 1):
        rng = _rng(cfg.seed, "text", t)
        n_syll = int(rng.integers(5, 9))
        vowels = rng.integers(0, len(_VOWELS), n_syll).tolist()
        consonants = rng.choice(list(_CONSONANTS), n_syll).tolist()
        durations = rng.uniform(0.16, 0.24, n_syll).tolist()
        words = " ".join(c + _VOWEL_LETTERS[v] for c, v in zip(consonants, vowels))
        texts[f"t{t:02d}"] = {"text": words, "vowels": vowels, "consonants": consonants, "durations": durations}
    return accents, speakers, texts


def _bandpass_noise(rng: np.random.Generator, n: int, centre: float, sr: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum *= np.exp(-0.5 * ((freqs - centre) / (0.25 * centre)) ** 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.abs(noise).max() + 1e-12)


def procedural_utterance(accent: dict, speaker: dict, text: dict, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Additive harmonic synthesis under a moving formant envelope; returns float32 peaking at ~0.5."""
    durations = np.asarray(text["durations"]) / speaker["rate"]
    starts = np.concatenate([[0.05], 0.05 + np.cumsum(durations)[:-1]])
    total = starts[-1] + durations[-1] + 0.1
    n = int(total * sr)
    frame_t = np.arange(0.0, total + _HOP_S, _HOP_S)

    # formant tracks: vowel targets at syllable centres, scaled by speaker and shifted by accent
    centres = starts + 0.55 * durations
    targets = _VOWELS[text["vowels"]] * speaker["formant_scale"] * (1.0 + np.asarray(accent["formant_shift"]))
    formants = np.stack([np.interp(frame_t, centres, targets[:, i]) for i in range(3)], axis=1)

    # f0: speaker mean, declination over the utterance, a slow wobble and a little jitter
    f0 = speaker["f0"] * (1.0 - 0.12 * frame_t / total) * (1.0 + 0.03 * np.sin(2 * np.pi * 3.0 * frame_t + rng.uniform(0, 6.3)))
    f0 *= 1.0 + 0.005 * rng.standard_normal(len(frame_t))

    n_harm = int(0.45 * sr / f0.min())
    k = np.arange(1, n_harm + 1)[:, None]
    freqs = k * f0[None, :]  # [harmonic, frame]
    envelope = sum(
        1.0 / (1.0 + ((freqs - formants[None, :, i]) / _BANDWIDTHS[i]) ** 2) for i in range(3)
    )
    tilt = speaker["tilt"] + accent["tilt"]
    amps = envelope / k * (freqs / 1000.0) ** tilt
    amps[freqs > 0.45 * sr] = 0.0

    t = np.arange(n) / sr
    f0_s = np.interp(t, frame_t, f0)
    phase = 2 * np.pi * np.cumsum(f0_s) / sr
    voiced = np.zeros(n)
    for h in range(n_harm):
        voiced += np.interp(t, frame_t, amps[h]) * np.sin((h + 1) * phase)

    # syllable envelope: vowel nucleus with soft edges, a consonant noise burst at each onset
    gain = np.zeros(n)
    consonant = np.zeros(n)
    for start, dur, cons in zip(starts, durations, text["consonants"]):
        a, b = int((start + 0.04) * sr), int((start + dur - 0.02) * sr)
        ramp = min(int(0.03 * sr), (b - a) // 2)
        seg = np.ones(b - a)
        seg[:ramp] = np.linspace(0, 1, ramp)
        seg[-ramp:] = np.linspace(1, 0, ramp)
        gain[a:b] = seg
        c0, c1 = int(start * sr), int((start + 0.04) * sr)
        consonant[c0:c1] = _bandpass_noise(rng, c1 - c0, _CONSONANTS[cons], sr) * np.hanning(c1 - c0)
    voiced *= gain / (np.abs(voiced * gain).max() + 1e-12)
    wav = voiced + 0.25 * consonant + 1e-3 * rng.standard_normal(n)
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


# ----------------------------------------------------------------------------- espeak engine


def _espeak_plan(cfg: SynthConfig) -> tuple[dict, dict, dict]:
    language = cfg.language or "en"
    voices = ACCENT_VOICES[language]
    names = cfg.accent_names or tuple(voices)[: cfg.accents]
    accents = {a: {"voice": voices[a]} for a in names}
    speakers = {}
    for accent in names:
        for s in range(1, cfg.speakers_per_accent + 1):
            rng = _rng(cfg.seed, "speaker", accent, s)
            # speaker s uses the same voice variant in every accent, so variant never stands in for accent
            speakers[f"{accent}_s{s:02d}"] = {
                "accent": accent,
                "variant": VOICE_VARIANTS[(s - 1) % len(VOICE_VARIANTS)],
                "pitch": int(50 + rng.integers(-12, 13)),
                "rate": int(165 + rng.integers(-15, 16)),
                "pitch_range": int(50 + rng.integers(-15, 16)),
            }
    texts = {f"t{t:02d}": {"text": SENTENCES[language][t - 1]} for t in range(1, cfg.texts + 1)}
    return accents, speakers, texts


def _trim(wav: np.ndarray, sr: int, threshold: float = 5e-4, pad_s: float = 0.08) -> np.ndarray:
    """Cut espeak's leading/trailing silence down to `pad_s`."""
    loud = np.flatnonzero(np.abs(wav) > threshold)
    if not len(loud):
        return wav
    pad = int(pad_s * sr)
    return wav[max(loud[0] - pad, 0): loud[-1] + pad]


def espeak_utterance(accent: dict, speaker: dict, text: dict, sr: int, seed: int = 0) -> np.ndarray:
    engine = espeak()
    voice = EspeakVoice(
        voice=accent["voice"], variant=speaker["variant"], rate=speaker["rate"],
        pitch=speaker["pitch"], pitch_range=speaker["pitch_range"],
    )
    wav = engine.synth(text["text"], voice, seed=seed)
    if engine.sample_rate != sr:
        wav = soxr.resample(wav, engine.sample_rate, sr, quality="HQ")
    # -6 dB of headroom: espeak peaks near full scale, which the clipping check would flag
    return _trim(0.5 * np.clip(wav, -1.0, 1.0), sr).astype(np.float32)


# ----------------------------------------------------------------------------- writing


def synthesize(out: str | Path, cfg: SynthConfig = SynthConfig(), *, as_zip: bool = False, progress: bool = True) -> Path:
    """Write a synthetic dataset to the folder `out` (or, with `as_zip`, the zip `out`); return its path.

    Built in a temporary folder beside `out` and moved into place at the end; `out` must not exist
    (an empty folder is fine).
    """
    out = Path(out)
    if as_zip and out.suffix != ".zip":
        out = out.with_name(out.name + ".zip")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise DatasetError(f"synth: {out} already exists; choose a new output path")
    plan = _procedural_plan(cfg) if cfg.engine == "procedural" else _espeak_plan(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_layout(tmp, cfg, *plan, progress=progress)
        if as_zip:
            with atomic_open(out, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
                    zf.write(path, path.relative_to(tmp).as_posix())
        else:
            if out.exists():
                out.rmdir()
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_layout(root: Path, cfg: SynthConfig, accents: dict, speakers: dict, texts: dict, *, progress: bool) -> None:
    items = [
        _Item(f"{speaker}_{text_id}", speaker, info["accent"], text_id)
        for speaker, info in speakers.items()
        for text_id in texts
    ]
    for item in tqdm(items, desc=f"synth ({cfg.engine})", unit="utt", disable=not progress):
        accent, speaker, text = accents[item.accent], speakers[item.speaker], texts[item.text_id]
        if cfg.engine == "procedural":
            wav = procedural_utterance(accent, speaker, text, cfg.sample_rate, _rng(cfg.seed, "utt", item.utt_id))
        else:
            wav = espeak_utterance(accent, speaker, text, cfg.sample_rate, seed=zlib.crc32(f"{cfg.seed}/{item.utt_id}".encode()))
        path = root / AUDIO_DIR / item.rel_path(cfg.audio_format)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {"compression_level": 1.0} if cfg.audio_format == "flac" else {}
        sf.write(path, wav, cfg.sample_rate, format=cfg.audio_format.upper(), subtype="PCM_16", **extra)

    write_metadata(
        root / METADATA,
        [
            {"utt_id": i.utt_id, "speaker": i.speaker, "accent": i.accent, "text_id": i.text_id,
             "rel_path": i.rel_path(cfg.audio_format)}
            for i in items
        ],
    )
    write_texts(root / TEXTS, {t: info["text"] for t, info in texts.items()})
    truth = {
        "config": cfg.model_dump(mode="json"),
        "strength": (DEFAULT_STRENGTH if cfg.strength is None else cfg.strength) if cfg.engine == "procedural" else None,
        "accents": accents,
        "speakers": speakers,
        "texts": texts,
    }
    atomic_write_text(root / SYNTH_JSON, json.dumps(truth, ensure_ascii=False, indent=1) + "\n")
