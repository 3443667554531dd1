"""ECAPA-TDNN speaker embeddings (speechbrain): the speaker-identity reference, `ecapa:embedding`.

The pipeline is speechbrain's own `EncoderClassifier.encode_batch` (80-bin fbank → sentence mean
normalisation → ECAPA-TDNN with relative lengths), except that padding is made harmless: fbanks are
computed per utterance before padding, and the padded frames are zero after normalisation. (Done as
`encode_batch` does it, a short utterance's embedding in a padded batch drifts to cosine ~0.92 with
its embedding alone; this way it stays above 0.999.) 'tiny-random' is the real architecture with small channels and seeded random weights.
"""

from __future__ import annotations

import re
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from stage1_5.config import TINY_RANDOM
from stage1_5.data.loading import prefetched_batches
from stage1_5.errors import FeatureError
from stage1_5.features.base import FeatureBatch, select_names
from stage1_5.torch_utils import resolve_device

if TYPE_CHECKING:
    import torch

    from stage1_5.config import EcapaConfig
    from stage1_5.data.manifest import Utterance

SAMPLE_RATE = 16_000
EMBEDDING = "ecapa:embedding"
TINY_CHANNELS = [64, 64, 64, 64, 192]
TINY_DIM = 192


def import_speechbrain() -> Any:
    """`import speechbrain`, then take its not-yet-loaded lazy proxies out of `sys.modules`.

    speechbrain 1.1 registers lazy proxies for optional integrations (k2_fsa, flair, ...) in
    `sys.modules`; any later walk over `sys.modules` (inspect.getmodule in torch, hypothesis) touches
    their `__file__` and the proxy raises ImportError for the missing optional dependency
    (speechbrain issue #2995). The proxies stay reachable as attributes of their parent packages.
    """
    import speechbrain
    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and module.lazy_module is None:
            del sys.modules[name]
    return speechbrain


def build_tiny_ecapa(seed: int = 0) -> tuple[Any, Any, Any]:
    """`(compute_features, mean_var_norm, embedding_model)` with seeded random ECAPA weights."""
    import torch

    import_speechbrain()
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.processing.features import InputNormalization

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ECAPA_TDNN(80, channels=TINY_CHANNELS, attention_channels=32, lin_neurons=TINY_DIM)
    return Fbank(n_mels=80), InputNormalization(norm_type="sentence", std_norm=False), model.eval()


_TINY_HPARAMS = """\
# A speechbrain speaker-encoder folder (the layout of speechbrain/spkrec-ecapa-voxceleb) holding the
# tiny random ECAPA: EncoderClassifier.from_hparams(source=<this folder>) loads it offline.
pretrained_path: {path}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 80
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: 80
    channels: {channels}
    attention_channels: 32
    lin_neurons: {dim}
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {dim}
    out_neurons: 2
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def save_tiny_ecapa(directory: str | Path, seed: int = 0) -> Path:
    """Write the seeded tiny ECAPA as a local speechbrain checkpoint folder (exercises the
    `from_hparams` path with no hub)."""
    import torch

    from stage1_5.io import atomic_open, atomic_write_text

    directory = Path(directory).resolve()
    _, _, model = build_tiny_ecapa(seed)
    with atomic_open(directory / "embedding_model.ckpt", "wb") as fh:
        torch.save(model.state_dict(), fh)
    atomic_write_text(directory / "hyperparams.yaml", _TINY_HPARAMS.format(path=directory, channels=TINY_CHANNELS, dim=TINY_DIM))
    return directory


class EcapaExtractor:
    """One speaker embedding per utterance. `savedir` is where speechbrain keeps a checkpoint's files
    (the driver passes `<cache_dir>/models/ecapa`); 'tiny-random' needs none."""

    source = "ecapa"
    version = "1"

    def __init__(self, cfg: "EcapaConfig", representations: Sequence[str] | None = None, *, savedir: str | Path | None = None):
        self.cfg = cfg
        self._names = select_names([EMBEDDING], representations, "sources.ecapa")
        self.savedir = None if savedir is None else Path(savedir)

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"model": self.cfg.model, "sample_rate": SAMPLE_RATE, "per_utterance_fbank": True}
        if self.cfg.model == TINY_RANDOM:
            key["seed"] = self.cfg.seed
        return key

    @cached_property
    def device(self) -> "torch.device":
        return resolve_device(self.cfg.device, "sources.ecapa.device")

    @cached_property
    def _modules(self) -> tuple[Any, Any, Any]:
        if self.cfg.model == TINY_RANDOM:
            modules = build_tiny_ecapa(self.cfg.seed)
        else:
            if self.savedir is None:
                raise ValueError("EcapaExtractor needs savedir= to load a speechbrain checkpoint")
            import_speechbrain()
            from speechbrain.inference.speaker import EncoderClassifier

            savedir = self.savedir / re.sub(r"[^A-Za-z0-9_.-]+", "_", self.cfg.model)
            try:
                classifier = EncoderClassifier.from_hparams(source=self.cfg.model, savedir=str(savedir), run_opts={"device": str(self.device)})
            except Exception as err:  # speechbrain raises hub, OS and YAML errors alike
                raise FeatureError(f"sources.ecapa.model: cannot load {self.cfg.model!r} ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
            if classifier is None:
                raise FeatureError(f"sources.ecapa.model: cannot load {self.cfg.model!r}")
            missing = [m for m in ("compute_features", "mean_var_norm", "embedding_model") if m not in classifier.mods]
            if missing:
                raise FeatureError(f"sources.ecapa.model: {self.cfg.model!r} has no {', '.join(missing)} module (not a speechbrain speaker encoder)")
            modules = (classifier.mods.compute_features, classifier.mods.mean_var_norm, classifier.mods.embedding_model)
        return tuple(m.to(self.device).eval() if hasattr(m, "eval") else m for m in modules)  # type: ignore[return-value]

    def _embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        compute_features, mean_var_norm, embedding_model = self._modules
        with torch.inference_mode():
            feats = [compute_features(torch.from_numpy(w).to(self.device)[None])[0] for w in wavs]
            n_frames = torch.tensor([f.shape[0] for f in feats], dtype=torch.float32)
            padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
            rel = (n_frames / n_frames.max()).to(self.device)
            valid = (torch.arange(padded.shape[1])[None, :] < n_frames[:, None]).to(self.device)
            # Sentence normalisation shifts the padding to -mean; zeroing it again makes the padding
            # neutral (mean-normalised features average zero), so the TDNN's edge frames barely notice it.
            normed = mean_var_norm(padded, rel) * valid[..., None]
            emb = embedding_model(normed, rel)  # [batch, 1, dim]
        return emb.squeeze(1).float().cpu().numpy()

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]:
        for loaded in prefetched_batches(utterances, batch_size, sample_rate=SAMPLE_RATE, error=FeatureError):
            batch, wavs = loaded.utterances, loaded.wavs
            yield FeatureBatch(
                utt_ids=[u.id for u in batch],
                vectors={EMBEDDING: self._embed(wavs)},
                n_audio_seconds=sum(len(w) for w in wavs) / SAMPLE_RATE,
            )
