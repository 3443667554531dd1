"""GE2E speaker encoder (Resemblyzer's pretrained voice encoder): a real pretrained network that runs
offline, probed layer by layer as a reference source, `ge2e:lstm_1` … `ge2e:lstm_3`.

The weights (`pretrained.pt`, 17 MB, Apache-2.0) ship inside the `resemblyzer` wheel on PyPI, so no
model hub is needed. The network is a 3-layer LSTM (40 mel bands in, 256 units per layer) trained with
the generalised end-to-end (GE2E) speaker-verification loss (Wan et al. 2018) on English speech
(LibriSpeech, VoxCeleb1 and VoxCeleb2, per the Real-Time-Voice-Cloning project it comes from): a model
trained to tell speakers apart, never to hear accent.

The checkpoint is read with `torch.load(weights_only=True)`; the resemblyzer package itself is not
imported (its `audio` module needs webrtcvad and `pkg_resources`, only used to trim long silences).
Its front end is reproduced from `resemblyzer.hparams`: 16 kHz audio, a power mel spectrogram of 40
bands with 25 ms windows and a 10 ms hop (`librosa.feature.melspectrogram`, as
`resemblyzer.audio.wav_to_mel_spectrogram` computes it). Each LSTM layer runs on the whole utterance
and its outputs are averaged over frames (mean pooling, as the backbone's layers are).
"""

from __future__ import annotations

import importlib.metadata
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from stage1_5.data.loading import prefetched_batches
from stage1_5.errors import FeatureError
from stage1_5.features.base import FeatureBatch, select_names
from stage1_5.torch_utils import resolve_device

if TYPE_CHECKING:
    import torch

    from stage1_5.config import Ge2eConfig
    from stage1_5.data.manifest import Utterance

SAMPLE_RATE = 16_000
N_MELS = 40
WINDOW, HOP = 400, 160
"""25 ms and 10 ms at 16 kHz (resemblyzer.hparams: mel_window_length, mel_window_step)."""
HIDDEN, N_LAYERS = 256, 3
LAYERS = tuple(f"lstm_{k}" for k in range(1, N_LAYERS + 1))
WEIGHTS_FILE = "resemblyzer/pretrained.pt"
"""Where the weights sit inside the resemblyzer distribution."""


def weights_path() -> Path:
    """`pretrained.pt` of the installed resemblyzer wheel (found without importing the package)."""
    try:
        path = Path(str(importlib.metadata.distribution("resemblyzer").locate_file(WEIGHTS_FILE)))
    except importlib.metadata.PackageNotFoundError:
        raise FeatureError("sources.ge2e: the resemblyzer package is not installed (pip install resemblyzer==0.1.4)") from None
    if not path.is_file():
        raise FeatureError(f"sources.ge2e: {path} not found in the resemblyzer installation")
    return path


def load_layers(path: str | Path) -> "torch.nn.ModuleList":
    """The encoder's three LSTM layers as three one-layer `nn.LSTM`s (so that every layer's output can
    be read), loaded from the checkpoint's `model_state` with `weights_only=True`."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise FeatureError(f"sources.ge2e: {path} holds no 'model_state' (not a Resemblyzer checkpoint)")
    layers = torch.nn.ModuleList(
        torch.nn.LSTM(N_MELS if k == 0 else HIDDEN, HIDDEN, num_layers=1, batch_first=True) for k in range(N_LAYERS)
    )
    for k, layer in enumerate(layers):
        own = {name: state.get(f"lstm.{name[:-1]}{k}") for name in layer.state_dict()}  # weight_ih_l0 ← lstm.weight_ih_l{k}
        missing = [name for name, value in own.items() if value is None]
        if missing:
            raise FeatureError(f"sources.ge2e: {path} has no lstm layer {k} ({', '.join(missing)})")
        layer.load_state_dict(own)
    return layers.eval()


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """[frames, 40] float32 power mel spectrogram of 16 kHz audio (Resemblyzer's front end)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=wav, sr=SAMPLE_RATE, n_fft=WINDOW, hop_length=HOP, n_mels=N_MELS)
    return mel.astype(np.float32).T


class Ge2eExtractor:
    """Mean-pooled outputs of each LSTM layer of Resemblyzer's pretrained GE2E encoder."""

    source = "ge2e"
    version = "1"

    def __init__(self, cfg: "Ge2eConfig", representations: Sequence[str] | None = None):
        self.cfg = cfg
        self._names = select_names([f"ge2e:{layer}" for layer in LAYERS], representations, "sources.ge2e")

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        return {"weights": WEIGHTS_FILE, "resemblyzer": importlib.metadata.version("resemblyzer"), "pooling": "mean"}

    @cached_property
    def device(self) -> "torch.device":
        return resolve_device(self.cfg.device, "sources.ge2e.device")

    @cached_property
    def _layers(self) -> "torch.nn.ModuleList":
        return load_layers(weights_path()).to(self.device)

    def _pooled(self, wavs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        import torch
        from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

        mels = [torch.from_numpy(mel_frames(w)) for w in wavs]
        lengths = torch.tensor([m.shape[0] for m in mels], dtype=torch.float32)[:, None]
        x = pack_sequence([m.to(self.device) for m in mels], enforce_sorted=False)
        out = {}
        with torch.inference_mode():
            for layer, module in zip(LAYERS, self._layers):
                x, _ = module(x)
                padded, _ = pad_packed_sequence(x, batch_first=True)  # padding is zero: the sum is over real frames
                name = f"ge2e:{layer}"
                if name in self._names:
                    out[name] = (padded.sum(1).cpu() / lengths).float().numpy()
        return out

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]:
        for loaded in prefetched_batches(utterances, batch_size, sample_rate=SAMPLE_RATE, error=FeatureError):
            yield FeatureBatch(
                utt_ids=[u.id for u in loaded.utterances],
                vectors=self._pooled(loaded.wavs),
                n_audio_seconds=sum(len(w) for w in loaded.wavs) / SAMPLE_RATE,
            )
