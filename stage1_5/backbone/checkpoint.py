"""Find a Qwen3-TTS checkpoint, check the options against its config.json, then load it.

Everything that can be wrong with `sources.backbone` is found before a weight is read:
`inspect_checkpoint` locates the checkpoint (local folder, Hugging Face cache, or one probe of the
hub, never a retry loop) and reads its config.json; `check_options` compares the config with the
speaker slot, language tag and layer aliases; `check_backbone` adds the device / dtype / attention
checks of `runtime.py`. Each problem is one `FeatureError` naming the option and the fix.
`load_backbone` then loads the weights (minutes for a real checkpoint on Colab).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from stage1_5.backbone.qwen3_tts import SPEECH_TOKENIZER_PREFIX, alias_sites, language_tag_id
from stage1_5.backbone.runtime import OPTION, BackboneRuntime, resolve_backbone_runtime
from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    import torch
    from qwen_tts import Qwen3TTSModel

    from stage1_5.config import BackboneConfig

Origin = Literal["tiny-random", "local", "hub-cache", "hub"]
MODEL_TYPES = {"base": "Base", "custom_voice": "CustomVoice", "voice_design": "VoiceDesign"}
HUB_PROBE_TIMEOUT_S = 10.0
_ALIAS = re.compile(r"decoder_block_(\d+)$")


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint as its config.json describes it, read before any weight is loaded."""

    name: str  # as configured
    origin: Origin
    location: str  # what `from_pretrained` is given: a folder, or the hub id (files not all cached yet)
    model_type: str  # tts_model_type: base | custom_voice | voice_design
    model_size: str  # tts_model_size: 0b6 | 1b7 | tiny
    n_layers: int  # talker blocks
    hidden_size: int
    language_ids: Mapping[str, int]  # codec_language_id
    speakers: tuple[str, ...]  # CustomVoice speaker names (spk_id)

    @property
    def kind(self) -> str:
        """Base / CustomVoice / VoiceDesign."""
        return MODEL_TYPES.get(self.model_type, self.model_type)

    def summary(self) -> str:
        where = {"tiny-random": "built in memory", "local": "local folder", "hub-cache": "Hugging Face cache", "hub": "Hugging Face hub"}[self.origin]
        return f"{self.name} ({self.kind}, {self.n_layers} talker blocks, hidden {self.hidden_size}; {where})"


def _info(name: str, origin: Origin, location: str, config: Mapping[str, Any]) -> CheckpointInfo:
    if config.get("model_type", "qwen3_tts") != "qwen3_tts" or "talker_config" not in config:
        raise FeatureError(
            f"{OPTION}.checkpoint: {name!r} is not a Qwen3-TTS checkpoint (its config.json has model_type "
            f"{config.get('model_type')!r}); give a Qwen3-TTS 12 Hz checkpoint such as Qwen/Qwen3-TTS-12Hz-1.7B-Base"
        )
    talker = config["talker_config"]
    return CheckpointInfo(
        name=name,
        origin=origin,
        location=location,
        model_type=str(config.get("tts_model_type", "base")),
        model_size=str(config.get("tts_model_size", "")),
        n_layers=int(talker["num_hidden_layers"]),
        hidden_size=int(talker["hidden_size"]),
        language_ids={str(k).lower(): int(v) for k, v in (talker.get("codec_language_id") or {}).items()},
        speakers=tuple(talker.get("spk_id") or {}),
    )


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FeatureError(f"{OPTION}.checkpoint: {name!r}: cannot read {path}: {err}") from None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set in the environment since."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _looks_like_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "/", "~")) or "\\" in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _hub_reachable(name: str) -> bool:
    """One metadata request, no retries: does the hub answer for `name`?"""
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(name, timeout=HUB_PROBE_TIMEOUT_S)
    except (OSError, ValueError):  # requests' ConnectionError / Timeout and the hub's HTTP errors are OSErrors
        return False
    return True


def _from_hub(name: str) -> CheckpointInfo:
    """The Hugging Face cache first (offline, or with the hub unreachable, the cached snapshot folder
    is loaded as a local folder); otherwise one probe of the hub, then config.json."""
    from huggingface_hub import HfApi, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    local = Path(name).expanduser().absolute()
    not_a_folder = f"{OPTION}.checkpoint: {name!r} is not a local folder ({local} does not exist)"
    cached = try_to_load_from_cache(name, "config.json")
    offline = hub_offline()
    if isinstance(cached, str):
        snapshot = str(Path(cached).parent)
        # a hub id makes transformers ask the hub (model_info, retried) even for cached files: load the folder
        online = not offline and _hub_reachable(name)
        return _info(name, "hub-cache", name if online else snapshot, _read_json(Path(cached), name))
    if offline:
        raise FeatureError(
            f"{not_a_folder}, and not in the Hugging Face cache while HF_HUB_OFFLINE is set; download it once "
            f"online (`huggingface-cli download {name}`) or give the local folder that holds it"
        )
    try:
        HfApi().model_info(name, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        raise FeatureError(f"{OPTION}.checkpoint: {name!r} is a gated model on the hub; log in (`huggingface-cli login`) after accepting its terms") from None
    except RepositoryNotFoundError:
        raise FeatureError(f"{not_a_folder}, and no model of that name is on the Hugging Face hub; check the spelling") from None
    except (OSError, ValueError) as err:
        raise FeatureError(
            f"{not_a_folder}, and the Hugging Face hub cannot be reached to fetch it ({type(err).__name__}); "
            "give a local folder, or set HF_HUB_OFFLINE=1 to use the local cache only"
        ) from None
    try:
        path = hf_hub_download(name, "config.json")
    except (OSError, ValueError) as err:
        raise FeatureError(f"{OPTION}.checkpoint: {name!r}: cannot download its config.json ({str(err).splitlines()[0][:200]})") from None
    return _info(name, "hub", name, _read_json(Path(path), name))


def inspect_checkpoint(name: str) -> CheckpointInfo:
    """Locate `name` (a local folder, a hub id, or 'tiny-random') and read its config.json."""
    from stage1_5.config import TINY_RANDOM

    if name == TINY_RANDOM:
        from stage1_5.backbone.synthetic import tiny_config_dicts

        return _info(name, "tiny-random", name, tiny_config_dicts()["model"])
    path = Path(name).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise FeatureError(f"{OPTION}.checkpoint: {name!r} is not a Qwen3-TTS checkpoint folder: it has no config.json")
        return _info(name, "local", str(path), _read_json(config, name))
    if path.exists():
        raise FeatureError(f"{OPTION}.checkpoint: {name!r} is a file; give the checkpoint folder (with config.json) or a hub name")
    if not _looks_like_repo_id(name):
        raise FeatureError(f"{OPTION}.checkpoint: local folder {name!r} not found ({path.absolute()})")
    return _from_hub(name)


def check_options(cfg: "BackboneConfig", info: CheckpointInfo, *, layers: bool = True) -> None:
    """The options that depend on the checkpoint: speaker slot, language tag, layer aliases."""
    if cfg.speaker_slot == "xvector" and info.model_type != "base":
        raise FeatureError(
            f"{OPTION}.speaker_slot: 'xvector' needs a Base checkpoint (only Base has a speaker encoder); "
            f"{info.name!r} is {info.kind}; use speaker_slot: zero"
        )
    language_tag_id(info.language_ids, cfg.language)
    if layers:
        check_layer_names(cfg.layers, info)


def check_layer_names(names, info: CheckpointInfo) -> None:
    """Aliases must exist in this checkpoint; raw module paths are checked once the model is loaded."""
    aliases = alias_sites(info.n_layers)
    for name in names:
        if name in aliases or name.startswith(("talker.", SPEECH_TOKENIZER_PREFIX)):
            continue
        match = _ALIAS.match(name)
        if match:
            raise FeatureError(
                f"{OPTION}.layers: {name!r} does not exist: {info.name!r} has {info.n_layers} talker blocks "
                f"(decoder_block_00 .. decoder_block_{info.n_layers - 1:02d}); list them with `stage1_5 layers`"
            )
        raise FeatureError(
            f"{OPTION}.layers: unknown backbone layer {name!r}; valid aliases: {', '.join(aliases)} "
            "(or a module path listed by `stage1_5 layers --modules`)"
        )


@dataclass(frozen=True)
class BackboneCheck:
    """What the cheap checks found: where the checkpoint is and what the backbone will run with."""

    checkpoint: CheckpointInfo
    runtime: BackboneRuntime


def check_backbone(cfg: "BackboneConfig", *, layers: bool = True) -> BackboneCheck:
    """Every check that needs no weights (seconds): runtime, checkpoint, options."""
    runtime = resolve_backbone_runtime(cfg)
    info = inspect_checkpoint(cfg.checkpoint)
    check_options(cfg, info, layers=layers)
    return BackboneCheck(info, runtime)


# --------------------------------------------------------------------------------------- loading


def _torch_dtype(name: str) -> "torch.dtype":
    from stage1_5.torch_utils import DTYPES

    return DTYPES[name]


def load_backbone(check: BackboneCheck, *, seed: int = 0) -> "Qwen3TTSModel":
    """Load the checked checkpoint in eval mode on the runtime's device, talker in the runtime's
    dtype, speech tokenizer in float32 ('tiny-random' builds the tiny model)."""
    import torch

    from stage1_5.backbone.qwen3_tts import import_qwen_tts

    info, runtime = check.checkpoint, check.runtime
    dtype, device = _torch_dtype(runtime.dtype), torch.device(runtime.device)
    if info.origin == "tiny-random":
        from stage1_5.backbone.synthetic import build_tiny_qwen3_tts

        tts = build_tiny_qwen3_tts(seed, attn_implementation=runtime.attn_implementation)
        tts.model.to(dtype=dtype)
        return place(tts, device)
    qwen_tts = import_qwen_tts()
    try:
        tts = qwen_tts.Qwen3TTSModel.from_pretrained(info.location, dtype=dtype, attn_implementation=runtime.attn_implementation)
        if dtype != torch.float32:
            # from_pretrained hands `dtype` to the speech tokenizer too, which rounds its float32 weights
            _reload_speech_tokenizer(tts, info.location)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FeatureError(f"{OPTION}.checkpoint: {info.name!r} cannot be loaded as a Qwen3-TTS checkpoint: {reason}") from None
    return place(tts, device)


def _reload_speech_tokenizer(tts: "Qwen3TTSModel", location: str) -> None:
    import torch
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer
    from transformers.utils.hub import cached_file

    config = cached_file(location, "speech_tokenizer/config.json")
    tts.model.load_speech_tokenizer(Qwen3TTSTokenizer.from_pretrained(os.path.dirname(config), dtype=torch.float32))


def place(tts: "Qwen3TTSModel", device: "torch.device") -> "Qwen3TTSModel":
    """Move the model AND its speech tokenizer (not a registered submodule) to `device`, eval mode.

    The speech tokenizer stays float32 whatever the model dtype: its codes are an argmin over
    codebooks, and bf16 flips some of them, which would make features depend on the dtype.
    """
    from stage1_5.backbone.runtime import SPEECH_TOKENIZER_DTYPE

    tts.model.to(device).eval()
    tokenizer = tts.model.speech_tokenizer
    tokenizer.model.to(device=device, dtype=_torch_dtype(SPEECH_TOKENIZER_DTYPE)).eval()
    tokenizer.device = device
    tts.device = device
    return tts
