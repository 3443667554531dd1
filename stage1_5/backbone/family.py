"""The backbone family protocol: what one TTS architecture tells the generic adapter, and the registry.

A family (in the spirit of s3prl's upstream folders and TransformerLens' one hook vocabulary) is ONE
file under `stage1_5/backbone/families/` defining a `BackboneFamily` subclass, plus ONE line in
`BUILTIN_FAMILIES` below. It

- reads a checkpoint's config.json without weights (`describe`: layer count, width, languages,
  speakers, whether a speaker encoder exists) and builds a `tiny_config()` for 'tiny-random';
- maps the family-neutral layer names (`text_encoder_out`, `decoder_block_NN`, `pre_vocoder`, plus
  its own extras) to module sites (`alias_sites`), and says the time axis of raw module paths;
- loads the model (`load`), and runs one teacher-forced pass over a batch of (text, audio)
  (`forward`), returning the pooling mask of every axis.

The generic adapter (`huggingface.py`) keeps batching, out-of-memory halving, hooks, early exit and
pooling. The family is found from config.json's `model_type` (`family_for_config`);
`sources.backbone.family` overrides it. A test or a plugin adds its own family for a block with
`registered_family(...)`.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping, Optional, Sequence

from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from stage1_5.backbone.checkpoint import CheckpointInfo
    from stage1_5.backbone.runtime import BackboneRuntime
    from stage1_5.config import BackboneConfig

NEUTRAL_ALIASES = ("text_encoder_out", "decoder_block_NN", "pre_vocoder")
"""The layer names every family maps (`decoder_block_NN` once per decoder block)."""


def block_alias(index: int) -> str:
    """'decoder_block_07' for block 7: the family-neutral name of a decoder block."""
    return f"decoder_block_{index:02d}"


@dataclass(frozen=True)
class LayerSite:
    """A requested layer: its name, the module whose output is captured, and that output's time axis.

    The axis names a pooling mask the family's `forward` returns (Qwen3-TTS: "talker", "text",
    "frames"; CSM: "backbone", "text", "frames", "depth"). `block`: the decoder block index for a
    block's output or a module inside it (early exit stops after the deepest one); None elsewhere.
    `module_classes`: the class names the module is (or derives from), e.g. the decoder layer class;
    an alias's `module_path` is then only the first guess (`BackboneFamily.locate`).
    """

    name: str
    module_path: str
    axis: str
    block: Optional[int] = None
    module_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointShape:
    """What a family reads from a checkpoint's config.json, before any weight loads."""

    kind: str  # "Base" / "CustomVoice" / "CSM"
    n_layers: int  # decoder blocks of the backbone transformer
    hidden_size: int
    language_ids: Mapping[str, int]  # language tags the checkpoint accepts (empty: none)
    speakers: tuple[str, ...]  # named built-in speakers
    speaker_encoder: bool  # does it carry a speaker encoder (x-vector slot)?


class BackboneFamily(abc.ABC):
    """One TTS architecture. Subclasses set the class attributes and implement the methods; instances
    hold no state (the loaded model is the `handle` passed back in)."""

    name: ClassVar[str]
    """The `family:` value and the registry key ('qwen3_tts')."""
    title: ClassVar[str]
    """How reports name it ('Qwen3-TTS')."""
    model_types: ClassVar[tuple[str, ...]]
    """config.json `model_type` values it reads."""
    sample_rate: ClassVar[int]
    """Audio rate its codec and speaker encoder take."""
    trained_languages: ClassVar[Optional[tuple[str, ...]]] = None
    """Languages it was trained on (ISO 639-1) when it is single-language; None: multilingual."""
    module_prefixes: ClassVar[tuple[str, ...]] = ()
    """Raw module paths with these prefixes are accepted before the model loads (checked once loaded)."""
    block_axis: ClassVar[str]
    """The axis of the decoder blocks' outputs (the one early exit shortens)."""

    # ------------------------------------------------------------------ without weights

    @abc.abstractmethod
    def describe(self, config: Mapping[str, Any]) -> CheckpointShape:
        """Read config.json (a dict); a config of another family is a `FeatureError`."""

    @abc.abstractmethod
    def tiny_config(self) -> dict[str, Any]:
        """The config.json of the family's 'tiny-random' model."""

    @abc.abstractmethod
    def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
        """Layer aliases -> sites for a backbone of `n_layers` decoder blocks, in network depth order."""

    def check_options(self, cfg: "BackboneConfig", shape: CheckpointShape, option: str) -> None:
        """Options that depend on the checkpoint (speaker slot, language); default: none."""

    def skeleton(self, config: Mapping[str, Any]) -> Any:
        """A handle of the model built from config.json on the meta device (no weights, no memory), on
        which `locate` checks the aliases' module classes before any weight loads; None (the default):
        they are checked on the loaded model."""
        return None

    def released_config(self, name: str) -> Optional[dict[str, Any]]:
        """The config.json of a released checkpoint shipped with the package (so that `stage1_5
        layers --checkpoint <hub id>` works offline), or None."""
        return None

    # ------------------------------------------------------------------ with weights

    @abc.abstractmethod
    def load(self, info: "CheckpointInfo", runtime: "BackboneRuntime", *, seed: int) -> Any:
        """Load (or, for 'tiny-random', build) the model in eval mode on the runtime's device: the handle."""

    @abc.abstractmethod
    def adopt(self, handle: Any, device: "torch.device") -> Any:
        """Place an already built handle on `device` in eval mode (benchmarks, Stage 2 monitors)."""

    @abc.abstractmethod
    def torch_model(self, handle: Any) -> "nn.Module":
        """The `nn.Module` of a handle (what `adapter.model.named_modules()` lists)."""

    @abc.abstractmethod
    def n_layers(self, handle: Any) -> int:
        """Decoder blocks of a loaded model."""

    def named_modules(self, handle: Any) -> dict[str, "nn.Module"]:
        """Every module by dotted path (default: the torch model's own)."""
        return dict(self.torch_model(handle).named_modules())

    @abc.abstractmethod
    def axis_of(self, path: str) -> Optional[str]:
        """The time axis of a raw module path's output, or None when it is outside the pass or not
        `[batch, time, features]`."""

    def block_of(self, path: str) -> Optional[int]:
        """The decoder block a raw module path lies in (for early exit); None outside the blocks."""
        return None

    def arrange(self, site: LayerSite, hidden: "torch.Tensor", masks: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """A captured output as `[batch, time, d]` on its axis (default: as captured; a module that
        runs on another layout, such as a per-frame depth decoder, is put back in place here)."""
        return hidden

    @abc.abstractmethod
    def forward(
        self,
        handle: Any,
        wavs: Sequence["np.ndarray"],
        texts: Sequence[str],
        sites: Sequence[LayerSite],
        cfg: "BackboneConfig",
        *,
        n_blocks: Optional[int],
        batch_speaker: bool,
    ) -> dict[str, "torch.Tensor"]:
        """One teacher-forced pass over a batch (hooks are attached by the caller), running only the
        first `n_blocks` decoder blocks (None: all); returns axis -> `[batch, time]` bool pooling mask."""

    # ------------------------------------------------------------------ generic, from the above

    def hookable_module_paths(self, handle: Any) -> list[str]:
        """Raw module paths that run once in the teacher-forced pass with a `[batch, time, d]` output."""
        return [path for path in self.named_modules(handle) if path and self.axis_of(path) is not None]

    def get_module(self, handle: Any, path: str) -> "nn.Module":
        modules = self.named_modules(handle)
        if path not in modules:
            raise FeatureError(f"backbone module {path!r} does not exist in this {self.title} model")
        return modules[path]

    def locate(self, handle: Any, site: LayerSite) -> LayerSite:
        """The alias `site` on this model's modules, found by class and structure with its path as the
        first guess: the module at `module_path` when it is of `module_classes`; else the one module of
        that class whose path ends with `module_path` (the same layout under another prefix, as a
        wrapping model or a native transformers port has); else, for a decoder block, entry `block` of
        the one `ModuleList` made of that class; else the one module of that class. A module of another
        class at the guessed path, or none found, is a `FeatureError` naming the alias, path and class."""
        if not site.module_classes:
            return site
        modules = self.named_modules(handle)
        expected = " or ".join(site.module_classes)
        guess = modules.get(site.module_path)
        if guess is not None:
            if _is_a(guess, site.module_classes):
                return site
            raise FeatureError(
                f"backbone layer {site.name!r}: module {site.module_path!r} is a {type(guess).__name__}, expected {expected} "
                f"(this checkpoint's layout is not the {self.title} one; list its modules with `stage1_5 layers --modules`)"
            )
        found = [path for path, module in modules.items() if path.endswith("." + site.module_path) and _is_a(module, site.module_classes)]
        if not found and site.block is not None:
            lists = [path for path, module in modules.items() if _is_module_list_of(module, site.module_classes)]
            found = [f"{lists[0]}.{site.block}"] if len(lists) == 1 and site.block < len(modules[lists[0]]) else []
        elif not found:
            found = [path for path, module in modules.items() if _is_a(module, site.module_classes)]
        if len(found) != 1:
            how = "none" if not found else f"{len(found)} candidates ({', '.join(found[:3])})"
            raise FeatureError(f"backbone layer {site.name!r}: no module {site.module_path!r} of class {expected} in this {self.title} model, and by class and structure {how}")
        return replace(site, module_path=found[0])

    def resolve_layers(self, handle: Any, names: Sequence[str]) -> list[LayerSite]:
        """Aliases or raw module paths -> sites; an unknown name is a `FeatureError` listing the valid
        aliases, an alias whose module is of the wrong class one naming it (`locate`)."""
        aliases = self.alias_sites(self.n_layers(handle))
        hookable = set(self.hookable_module_paths(handle))
        sites = []
        for name in dict.fromkeys(names):
            if name in aliases:
                sites.append(self.locate(handle, aliases[name]))
            elif name in hookable:
                sites.append(LayerSite(name, name, str(self.axis_of(name)), self.block_of(name)))
            else:
                raise FeatureError(
                    f"unknown backbone layer {name!r}; valid aliases: {', '.join(aliases)} "
                    "(or a module path listed by `stage1_5 layers --checkpoint ... --modules`)"
                )
        return sites

    def blocks_needed(self, sites: Sequence[LayerSite]) -> Optional[int]:
        """How many decoder blocks the pass must run for `sites`: one past the deepest requested block,
        0 when no site is on the block axis, None (all) when a site on that axis lies after the blocks
        (a final norm, a head). The blocks are causal in depth, so stopping after the deepest one leaves
        every captured layer unchanged."""
        deepest = -1
        for site in sites:
            if site.axis != self.block_axis:
                continue
            if site.block is None:
                return None
            deepest = max(deepest, site.block)
        return deepest + 1


def _is_a(module: "nn.Module", classes: Sequence[str]) -> bool:
    """Is `module` of one of the class names `classes` (its own class or a base class)?"""
    return any(cls.__name__ in classes for cls in type(module).__mro__)


def _is_module_list_of(module: "nn.Module", classes: Sequence[str]) -> bool:
    from torch import nn

    return isinstance(module, nn.ModuleList) and len(module) > 0 and all(_is_a(child, classes) for child in module)


LANGUAGE_NAMES = {"en": "english", "zh": "chinese", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese", "ja": "japanese", "ko": "korean", "ru": "russian"}
"""ISO 639-1 code -> the language names `sources.backbone.language` takes."""


def language_note(family: BackboneFamily, language: Optional[str], name: str) -> Optional[str]:
    """A sentence for the report when backbone `name` of a single-language `family` reads a dataset
    in another `language` (its `language` setting); None when it matches, is auto, or is unknown."""
    if family.trained_languages is None or language is None or language.lower() == "auto":
        return None
    trained = {code for code in family.trained_languages} | {LANGUAGE_NAMES.get(code, code) for code in family.trained_languages}
    if language.lower() in trained:
        return None
    spoken = ", ".join(LANGUAGE_NAMES.get(code, code) for code in family.trained_languages)
    return f"backbone {name} is {family.title}, trained on {spoken} only; this dataset is {language} ({name}.language), so its layers may encode the accent less well than they would in {spoken}"


@contextlib.contextmanager
def truncated_blocks(owner: "nn.Module", attribute: str, n_blocks: Optional[int]) -> Iterator[None]:
    """Run only the first `n_blocks` decoder blocks of `owner.<attribute>` (a ModuleList) inside the block.

    The model's forward loops over the list; a shorter `ModuleList` of the same block objects (same
    weights, same hooks) stops it early. The full list is restored on exit, even on error.
    """
    from torch import nn

    layers = getattr(owner, attribute)
    if n_blocks is None or n_blocks >= len(layers):
        yield
        return
    setattr(owner, attribute, nn.ModuleList(list(layers)[:n_blocks]))
    try:
        yield
    finally:
        setattr(owner, attribute, layers)


# ----------------------------------------------------------------------------------- registry

BUILTIN_FAMILIES = {
    "qwen3_tts": "stage1_5.backbone.families.qwen3_tts:Qwen3TTSFamily",
    "csm": "stage1_5.backbone.families.csm:CsmFamily",
}
"""Family name -> "module:class". Adding a family is its file under `families/` and one line here."""

DEFAULT_FAMILY = "qwen3_tts"
"""The family of 'tiny-random' when `family:` is not set (the Qwen3-TTS project default)."""

_registry: dict[str, Any] = dict(BUILTIN_FAMILIES)


@contextlib.contextmanager
def registered_family(family: type[BackboneFamily]) -> Iterator[type[BackboneFamily]]:
    """Add `family` to the registry for the duration of the block (a plugin's or a test's own)."""
    if family.name in _registry:
        raise ValueError(f"backbone family {family.name!r} is already registered")
    _registry[family.name] = family
    try:
        yield family
    finally:
        _registry.pop(family.name, None)


def family_names() -> list[str]:
    return list(_registry)


def family_named(name: str, option: str = "sources.backbone.family") -> BackboneFamily:
    """The registered family called `name` (an instance); an unknown name is a `FeatureError`."""
    target = _registry.get(name)
    if target is None:
        raise FeatureError(f"{option}: unknown backbone family {name!r}; valid: {', '.join(_registry)}")
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
    return target()


def family_for_config(config: Mapping[str, Any], name: str, option: str = "sources.backbone") -> BackboneFamily:
    """The family whose `model_types` include config.json's `model_type`; none is a `FeatureError`."""
    model_type = config.get("model_type")
    for family in map(family_named, _registry):
        if model_type in family.model_types:
            return family
    known = ", ".join(f"{t} ({n})" for n in _registry for t in family_named(n).model_types)
    raise FeatureError(
        f"{option}.checkpoint: {name!r} has config.json model_type {model_type!r}, which no backbone family reads "
        f"(known: {known}); set {option}.family to read it as one of them"
    )
