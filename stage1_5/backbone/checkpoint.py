"""Find a backbone checkpoint, check the options against its config.json, then load it (any family).

Everything that can be wrong with `sources.backbone` is found before a weight is read:
`inspect_checkpoint` locates the checkpoint (local folder, Hugging Face cache, or one probe of the
hub, never a retry loop), reads its config.json and hands it to its family (`family.py`: found from
`model_type`, or `sources.backbone.family`); `check_options` compares the config with the family's
options and layer aliases; `check_backbone` adds the device / dtype / attention checks of
`runtime.py`. Each problem is one `FeatureError` naming the option and the fix. `load_backbone` then
has the family load the weights (minutes for a real checkpoint on Colab).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Optional

from stage1_5.backbone.family import DEFAULT_FAMILY, BackboneFamily, CheckpointShape, family_for_config, family_named, family_names
from stage1_5.backbone.runtime import OPTION, BackboneRuntime, resolve_backbone_runtime
from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    from typing import Sequence

    from stage1_5.config import BackboneConfig, NamedBackboneConfig

Origin = Literal["tiny-random", "local", "hub-cache", "hub", "packaged"]
HUB_PROBE_TIMEOUT_S = 10.0
_ALIAS = re.compile(r"decoder_block_(\d+)$")


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint as its config.json describes it, read before any weight is loaded."""

    name: str  # as configured
    origin: Origin
    location: str  # what `from_pretrained` is given: a folder, or the hub id (files not all cached yet)
    family: str  # the registered family that reads it
    shape: CheckpointShape
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # config.json as read

    @property
    def kind(self) -> str:
        return self.shape.kind

    @property
    def n_layers(self) -> int:
        return self.shape.n_layers

    @property
    def hidden_size(self) -> int:
        return self.shape.hidden_size

    @property
    def language_ids(self) -> Mapping[str, int]:
        return self.shape.language_ids

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.shape.speakers

    def summary(self) -> str:
        where = {
            "tiny-random": "built in memory",
            "local": "local folder",
            "hub-cache": "Hugging Face cache",
            "hub": "Hugging Face hub",
            "packaged": "config shipped with stage1_5, weights not downloaded",
        }[self.origin]
        return f"{self.name} ({self.kind}, {self.n_layers} decoder blocks, hidden {self.hidden_size}; {where})"


def _info(name: str, origin: Origin, location: str, config: Mapping[str, Any], family: Optional[str]) -> CheckpointInfo:
    """Read `config` with the family named in the settings, or the one its `model_type` names."""
    reader = family_named(family) if family else family_for_config(config, name, OPTION)
    try:
        shape = reader.describe(config)
    except FeatureError as err:
        raise FeatureError(f"{OPTION}.checkpoint: {name!r} cannot be read as a {reader.title} checkpoint: {err}") from None
    return CheckpointInfo(name=name, origin=origin, location=location, family=reader.name, shape=shape, config=dict(config))


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


def _from_hub(name: str, family: Optional[str]) -> CheckpointInfo:
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
        return _info(name, "hub-cache", name if online else snapshot, _read_json(Path(cached), name), family)
    packaged = _packaged(name, family)
    if offline and packaged is not None:
        return packaged
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
        if packaged is not None:
            return packaged
        raise FeatureError(
            f"{not_a_folder}, and the Hugging Face hub cannot be reached to fetch it ({type(err).__name__}); "
            "give a local folder, or set HF_HUB_OFFLINE=1 to use the local cache only"
        ) from None
    try:
        path = hf_hub_download(name, "config.json")
    except (OSError, ValueError) as err:
        raise FeatureError(f"{OPTION}.checkpoint: {name!r}: cannot download its config.json ({str(err).splitlines()[0][:200]})") from None
    return _info(name, "hub", name, _read_json(Path(path), name), family)


def _packaged(name: str, family: Optional[str]) -> Optional[CheckpointInfo]:
    """A released checkpoint whose config.json ships with a family (read offline), or None."""
    for reader in map(family_named, [family] if family else family_names()):
        config = reader.released_config(name)
        if config is not None:
            return _info(name, "packaged", name, config, reader.name)
    return None


def inspect_checkpoint(name: str, family: Optional[str] = None) -> CheckpointInfo:
    """Locate `name` (a local folder, a hub id, or 'tiny-random') and read its config.json with
    `family` (default: the family its `model_type` names; 'tiny-random' builds `DEFAULT_FAMILY`'s)."""
    from stage1_5.config import TINY_RANDOM

    if name == TINY_RANDOM:
        reader = family_named(family or DEFAULT_FAMILY)
        return _info(name, "tiny-random", name, reader.tiny_config(), reader.name)
    path = Path(name).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise FeatureError(f"{OPTION}.checkpoint: {name!r} is not a checkpoint folder: it has no config.json")
        return _info(name, "local", str(path), _read_json(config, name), family)
    if path.exists():
        raise FeatureError(f"{OPTION}.checkpoint: {name!r} is a file; give the checkpoint folder (with config.json) or a hub name")
    if not _looks_like_repo_id(name):
        raise FeatureError(f"{OPTION}.checkpoint: local folder {name!r} not found ({path.absolute()})")
    return _from_hub(name, family)


def check_options(cfg: "BackboneConfig", info: CheckpointInfo, *, layers: bool = True) -> None:
    """The options that depend on the checkpoint: the family's (speaker slot, language...), layer aliases."""
    family = family_named(info.family)
    family.check_options(cfg, info.shape, OPTION)
    if layers:
        check_layer_names(cfg.layers, info, family)


def check_layer_names(names, info: CheckpointInfo, family: BackboneFamily) -> None:
    """Aliases must exist in this checkpoint, and, where the family builds a weightless skeleton of
    the model (`BackboneFamily.skeleton`), sit on modules of their class (`BackboneFamily.locate`);
    raw module paths are checked once the model is loaded."""
    aliases = family.alias_sites(info.n_layers)
    requested = [name for name in names if name in aliases]
    skeleton = family.skeleton(info.config) if requested and info.config else None
    for name in names:
        if name in aliases:
            if skeleton is not None:
                try:
                    family.locate(skeleton, aliases[name])
                except FeatureError as err:
                    raise FeatureError(f"{OPTION}.layers: {err}") from None
            continue
        if name.startswith(family.module_prefixes):
            continue
        match = _ALIAS.match(name)
        if match:
            raise FeatureError(
                f"{OPTION}.layers: {name!r} does not exist: {info.name!r} has {info.n_layers} decoder blocks "
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
    info = inspect_checkpoint(cfg.checkpoint, cfg.family)
    check_options(cfg, info, layers=layers)
    return BackboneCheck(info, runtime)


def language_notes(backbones: "Sequence[NamedBackboneConfig]") -> list[str]:
    """The report's sentences for backbones of a single-language family set to another language
    (`family.language_note`); a backbone whose checkpoint cannot be inspected here says nothing."""
    from stage1_5.backbone.family import language_note

    notes = []
    for backbone in backbones:
        if backbone.language is None or backbone.language.lower() == "auto":
            continue
        try:
            info = inspect_checkpoint(backbone.checkpoint, backbone.family)
        except FeatureError:
            continue
        note = language_note(family_named(info.family), backbone.language, backbone.name)
        if note is not None:
            notes.append(note)
    return notes


# --------------------------------------------------------------------------------------- loading


def load_backbone(check: BackboneCheck, *, seed: int = 0) -> Any:
    """Load the checked checkpoint with its family, in eval mode on the runtime's device: the family's handle."""
    return family_named(check.checkpoint.family).load(check.checkpoint, check.runtime, seed=seed)
