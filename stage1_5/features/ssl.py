"""Self-supervised speech models (WavLM / HuBERT / wav2vec2) through transformers: every hidden state
in one forward pass, pooled over valid frames (`stage1_5.torch_utils.masked_pool`, shared with the backbone).

The checkpoint's own feature extractor (`AutoFeatureExtractor`) pads, normalises and masks the
waveforms: per-utterance zero mean and unit variance over the real samples, and an attention mask
for the model only when its feature extractor asks for one (group-norm models such as wav2vec2-base
are trained on zero-padded input without a mask). A checkpoint without one, and 'tiny-random', get
`Wav2Vec2FeatureExtractor` with the same rule read from the model config (mask when the CNN uses
layer norm).

`ssl:layer_00` is `hidden_states[0]` (the feature projection / CNN output entering the transformer),
`ssl:layer_NN` the output of transformer layer NN. 'tiny-random' builds a small seeded WavLM from
`WavLMConfig` (real architecture, random weights) for tests and the offline demo.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from stage1_5.config import TINY_RANDOM
from stage1_5.data.loading import prefetched_batches
from stage1_5.errors import FeatureError
from stage1_5.features.base import FeatureBatch, select_names
from stage1_5.torch_utils import masked_pool, resolve_device, resolve_dtype

if TYPE_CHECKING:
    import torch

    from stage1_5.config import SSLConfig
    from stage1_5.data.manifest import Utterance

SAMPLE_RATE = 16_000


def tiny_wavlm_config() -> Any:
    """A 2-layer, 32-wide WavLM with the real 7-layer CNN front end (20 ms frames); ~27k parameters."""
    from transformers import WavLMConfig

    return WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        feat_extract_norm="layer",
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        num_buckets=32,
        max_bucket_distance=80,
    )


def build_tiny_wavlm(seed: int = 0) -> Any:
    """Seeded random WavLMModel of `tiny_wavlm_config()`; the global torch RNG is left untouched."""
    import torch
    from transformers import WavLMModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return WavLMModel(tiny_wavlm_config()).eval()


def layer_name(index: int) -> str:
    return f"ssl:layer_{index:02d}"


class SSLExtractor:
    """`ssl:layer_00` … `ssl:layer_NN` from one forward pass with `output_hidden_states=True`."""

    source = "ssl"
    version = "1"

    def __init__(self, cfg: "SSLConfig", representations: Sequence[str] | None = None):
        self.cfg = cfg
        self._requested = None if representations is None else list(representations)

    # -- what the checkpoint is (config files only, no weights) --------------------------------
    @cached_property
    def _model_config(self) -> Any:
        if self.cfg.model == TINY_RANDOM:
            return tiny_wavlm_config()
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(self.cfg.model)
        except (OSError, ValueError) as err:
            raise FeatureError(f"sources.ssl.model: cannot load {self.cfg.model!r} ({str(err).splitlines()[0]})") from None

    @cached_property
    def feature_extractor(self) -> Any:
        """The checkpoint's `AutoFeatureExtractor`; without one, `Wav2Vec2FeatureExtractor` normalising
        and masking as the model config implies."""
        fe = None
        if self.cfg.model != TINY_RANDOM:
            from transformers import AutoFeatureExtractor

            try:
                fe = AutoFeatureExtractor.from_pretrained(self.cfg.model)
            except (OSError, ValueError):
                fe = None  # a checkpoint without preprocessor_config.json
        if fe is None:
            from transformers import Wav2Vec2FeatureExtractor

            layer_norm_cnn = getattr(self._model_config, "feat_extract_norm", "layer") == "layer"
            fe = Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=layer_norm_cnn)
        if "input_values" not in getattr(fe, "model_input_names", ()):
            raise FeatureError(
                f"sources.ssl.model: {self.cfg.model!r} takes {', '.join(fe.model_input_names)}, not a waveform; "
                "supported: wav2vec2 / HuBERT / WavLM checkpoints"
            )
        if getattr(fe, "sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
            raise FeatureError(f"sources.ssl.model: {self.cfg.model!r} expects {fe.sampling_rate} Hz; only 16 kHz models are supported")
        return fe

    @property
    def _preprocessing(self) -> dict[str, bool]:
        """What the feature extractor does to the waveforms (part of the store key)."""
        fe = self.feature_extractor
        return {"normalize": bool(getattr(fe, "do_normalize", False)), "attention_mask": bool(fe.return_attention_mask)}

    @cached_property
    def _names(self) -> list[str]:
        n_layers = int(self._model_config.num_hidden_layers)
        every = [layer_name(i) for i in range(n_layers + 1)]
        if self.cfg.layers == "all":
            configured = every
        else:
            configured = select_names(every, [f"ssl:{layer}" for layer in self.cfg.layers], "sources.ssl.layers")
        return select_names(configured, self._requested, "sources.ssl.layers")

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        key = {
            "model": self.cfg.model,
            "pooling": self.cfg.pooling,
            "dtype": str(self._dtype).replace("torch.", ""),
            "sample_rate": SAMPLE_RATE,
            **self._preprocessing,
        }
        if self.cfg.model == TINY_RANDOM:
            key["seed"] = self.cfg.seed  # the seed only matters for random weights
        return key

    # -- the model (weights load on first use) ------------------------------------------------
    @cached_property
    def device(self) -> "torch.device":
        return resolve_device(self.cfg.device, "sources.ssl.device")

    @cached_property
    def _dtype(self) -> "torch.dtype":
        return resolve_dtype(self.cfg.dtype, self.device)

    @cached_property
    def model(self) -> Any:
        if self.cfg.model == TINY_RANDOM:
            model = build_tiny_wavlm(self.cfg.seed)
        else:
            from transformers import AutoModel

            try:
                model = AutoModel.from_pretrained(self.cfg.model)
            except (OSError, ValueError) as err:
                raise FeatureError(f"sources.ssl.model: cannot load {self.cfg.model!r} ({str(err).splitlines()[0]})") from None
        return model.to(device=self.device, dtype=self._dtype).eval()

    def _forward(self, wavs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        # The sample mask is always asked for: normalisation must see only the real samples, and pooling
        # the real frames; the model gets it only when its feature extractor says so.
        inputs = self.feature_extractor(
            list(wavs), sampling_rate=SAMPLE_RATE, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        samples = inputs["attention_mask"].to(self.device)
        kwargs: dict[str, Any] = {"output_hidden_states": True}
        if self._preprocessing["attention_mask"]:
            kwargs["attention_mask"] = samples
        with torch.inference_mode(), warnings.catch_warnings():
            # WavLM mixes a bool padding mask with its float position bias; torch warns, the result is right.
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
            out = self.model(inputs["input_values"].to(device=self.device, dtype=self._dtype), **kwargs)
            hidden = out.hidden_states
            frames = self.model._get_feature_vector_attention_mask(hidden[0].shape[1], samples)
            wanted = {name: int(name.rsplit("_", 1)[1]) for name in self._names}
            return {name: masked_pool(hidden[i], frames, self.cfg.pooling).cpu().numpy() for name, i in wanted.items()}

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]:
        for loaded in prefetched_batches(utterances, batch_size, sample_rate=SAMPLE_RATE, error=FeatureError):
            batch, wavs = loaded.utterances, loaded.wavs
            short = [u.id for u, w in zip(batch, wavs) if len(w) < 400]
            if short:
                raise FeatureError(f"ssl: utterance {short[0]!r} is shorter than 25 ms, too short for one frame")
            yield FeatureBatch(
                utt_ids=[u.id for u in batch],
                vectors=self._forward(wavs),
                n_audio_seconds=sum(len(w) for w in wavs) / SAMPLE_RATE,
            )
