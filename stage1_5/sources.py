"""The feature sources, one `SourceSpec` each: the one place that says what a source is.

Extraction (which extractor computes `source:layer` vectors), the gates' parametrisation, the
decision's roles, the report's row order and wording and the figures' colours all read this table.
Adding a source (a Whisper encoder reference) is its extractor module, its config section
(`stage1_5.config.SourcesConfig`) and one entry in `BUILTIN_SOURCES`. Backbones are sources named by
the config: `sources.backbones` lists them (each `name` is a representation prefix and a deciding
source, `BackboneSourceSpec`), `sources.backbone` is the one-item list named 'backbone';
`configured_backbones(cfg)` registers the named ones for a run.

A low module (it imports only the config), so that decision/ and report/ may read it. Extractors are
named by import path ("module:attribute") and resolved by `stage1_5.features.extract` when a source is
extracted: the registry never imports the heavy extractor modules.

Sources that are not registered (columns of `sources.external` files such as `mymodel:layer_03`) are
references, ordered after the registered sources, drawn in a neutral colour.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Union

from stage1_5.config import DEFAULT_BACKBONE_NAME, TINY_RANDOM

if TYPE_CHECKING:
    from pydantic import BaseModel

    from stage1_5.config import Stage15Config


class Role(str, Enum):
    """What a source's layers do in the decision (DESIGN §5); the value is the report's wording."""

    DECIDES = "decides"
    REFERENCE = "reference"


def _natural(text: str) -> tuple:
    """'layer_10' after 'layer_2': digit runs compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def natural_layer_key(layer: str) -> tuple:
    return (0, _natural(layer))


def backbone_depth_key(layer: str) -> tuple:
    """Qwen3-TTS aliases in network depth: text_encoder_out, decoder_block_NN ascending, pre_vocoder, then raw module paths."""
    rank = {"text_encoder_out": 0, "pre_vocoder": 2}.get(layer, 1 if layer.startswith("decoder_block_") else 3)
    return (rank, _natural(layer))


@dataclass(frozen=True)
class SourceSpec:
    """One feature source.

    name: the representation prefix (`<name>:<layer>`), the CLI subcommand and, by default, the config section.
    title: how the report names it ("SSL").
    extractor: "module:attribute" (or the callable itself) building the extractor as
        `extractor(settings, representations)`, `settings` being the source's config section.
    role: DECIDES (its layers make the decision) or REFERENCE (diagnoses a NOGO only).
    order: report and figure order (ascending).
    colour, marker: how the figures draw it.
    weights: the settings field naming the weights; 'tiny-random' there adds a not-scientific caveat.
    layers: the settings field listing its layers: their order is the report's row order, and a deciding
        source's gates are parametrised over them without loading a model (references need none).
    model_dir: the extractor keeps model files under `<cache_dir>/models/<name>` (passed as a third
        argument, `savedir=`).
    layer_key: natural order of layers the config does not list.
    section: the attribute of `cfg.sources` holding its settings (default: `name`).
    reads_text: its extractor reads each utterance's transcript with the audio (an empty one is an error).
    synthetic: set for a stand-in that no network computed (the GO demo's planted vectors): the
        sentence the not-scientific banner carries whenever it is enabled. Sentences that name the
        deciding sources ("no backbone layer ...") name the ones it stands in for.
    about: what the report says about a source's network (what it was trained on).
    has_model: False for a source with no network to load (acoustic statistics, planted vectors):
        preflight's wording.
    """

    name: str
    title: str
    extractor: Union[str, Callable[..., Any]]
    role: Role
    order: int
    colour: str
    marker: str
    weights: Optional[str] = None
    layers: Optional[str] = None
    model_dir: bool = False
    layer_key: Callable[[str], tuple] = natural_layer_key
    section: Optional[str] = None
    reads_text: bool = False
    synthetic: Optional[str] = None
    about: Optional[str] = None
    has_model: bool = True

    @property
    def decides(self) -> bool:
        return self.role is Role.DECIDES

    def settings(self, cfg: "Stage15Config") -> "BaseModel":
        """The source's config section (`cfg.sources.<section>`): a pydantic model with at least
        `enabled` and `batch_size`, handed to its extractor."""
        return getattr(cfg.sources, self.section or self.name)

    def enabled(self, cfg: "Stage15Config") -> bool:
        return bool(self.settings(cfg).enabled)

    @property
    def key(self) -> str:
        """Dotted config key of its section, for messages: 'sources.ssl'."""
        return f"sources.{self.section or self.name}"

    def random_weights(self, cfg: "Stage15Config") -> bool:
        return self.weights is not None and getattr(self.settings(cfg), self.weights) == TINY_RANDOM

    def configured_layers(self, cfg: "Stage15Config") -> Optional[list[str]]:
        """The layers its config lists, in that order; None when it lists none ('all', or no such field)."""
        layers = getattr(self.settings(cfg), self.layers) if self.layers else None
        return list(layers) if isinstance(layers, list) else None


@dataclass(frozen=True)
class BackboneSourceSpec(SourceSpec):
    """A deciding backbone: its settings are the `sources.backbones` item of its name (`sources.backbone`
    is the item named 'backbone'); absent from the list, the unused `sources.backbone`, disabled."""

    def settings(self, cfg: "Stage15Config") -> "BaseModel":
        listed = next((b for b in cfg.sources.backbone_list() if b.name == self.name), None)
        return listed if listed is not None else cfg.sources.backbone.model_copy(update={"enabled": False})

    @property
    def key(self) -> str:
        return "sources.backbone" if self.name == DEFAULT_BACKBONE_NAME else f"sources.backbones[{self.name}]"


BACKBONE_COLOURS = ("#1f4e9c", "#c2185b", "#2e7d32", "#ef6c00", "#5e35b1")
"""Figure colours of the listed backbones, in config order (the first is the single backbone's)."""


def backbone_spec(name: str, index: int = 0) -> BackboneSourceSpec:
    """The deciding source of the `index`-th configured backbone called `name`."""
    return BackboneSourceSpec(
        name=name, title="Backbone" if name == DEFAULT_BACKBONE_NAME else name,
        extractor="stage1_5.features.backbone:BackboneExtractor", role=Role.DECIDES, order=index,
        colour=BACKBONE_COLOURS[index % len(BACKBONE_COLOURS)], marker="o", weights="checkpoint", layers="layers",
        layer_key=backbone_depth_key, reads_text=True,
    )  # fmt: skip


BUILTIN_SOURCES = (
    backbone_spec(DEFAULT_BACKBONE_NAME),
    SourceSpec(
        name="planted", title="Planted (synthetic)", extractor="stage1_5.planted_demo:PlantedExtractor",
        role=Role.DECIDES, order=8, colour="#e65100", marker="*", layers="layers", layer_key=backbone_depth_key, has_model=False,
        synthetic="the planted source holds synthetic vectors with a planted accent (stage1_5/planted_demo.py), not any network's features",
    ),
    SourceSpec(
        name="ssl", title="SSL", extractor="stage1_5.features.ssl:SSLExtractor",
        role=Role.REFERENCE, order=10, colour="#7b3fa0", marker="s", weights="model",
    ),
    SourceSpec(
        name="ecapa", title="ECAPA", extractor="stage1_5.features.ecapa:EcapaExtractor",
        role=Role.REFERENCE, order=20, colour="#00897b", marker="^", weights="model", model_dir=True,
    ),
    SourceSpec(
        name="acoustic", title="Acoustic", extractor="stage1_5.features.acoustic:AcousticExtractor",
        role=Role.REFERENCE, order=30, colour="#6d4c41", marker="D", has_model=False,
    ),
    SourceSpec(
        name="ge2e", title="GE2E (pretrained)", extractor="stage1_5.features.ge2e:Ge2eExtractor",
        role=Role.REFERENCE, order=25, colour="#c2185b", marker="v",
        about="Resemblyzer's pretrained voice encoder (3-layer LSTM, weights from the resemblyzer 0.1.4 wheel, Apache-2.0), "
        "trained for speaker verification (GE2E loss) on English speech: LibriSpeech, VoxCeleb1 and VoxCeleb2",
    ),
)  # fmt: skip
"""The sources stage1_5 ships. The Qwen3-TTS backbone decides; SSL, ECAPA and acoustic features are references."""

UNREGISTERED_COLOUR, UNREGISTERED_MARKER = "#555555", "P"
"""How the figures draw a source nobody registered (an external file's own prefix)."""

_registry: dict[str, SourceSpec] = {spec.name: spec for spec in BUILTIN_SOURCES}


@contextlib.contextmanager
def registered(*specs: SourceSpec) -> Iterator[tuple[SourceSpec, ...]]:
    """Add `specs` to the registry for the duration of the block (a plugin's or a test's own source).

    A name that is already registered is refused: a source never silently replaces another.
    """
    names = [spec.name for spec in specs]
    taken = [name for i, name in enumerate(names) if name in _registry or name in names[:i]]
    if taken:
        raise ValueError(f"feature source {taken[0]!r} is already registered")
    _registry.update({spec.name: spec for spec in specs})
    try:
        yield specs
    finally:
        for spec in specs:
            _registry.pop(spec.name, None)


@contextlib.contextmanager
def configured_backbones(cfg: "Stage15Config") -> Iterator[list[str]]:
    """Register the backbones `cfg` names for the block (the built-in 'backbone' leaves it when the
    config lists others); yields every configured backbone name, in config order. Nested blocks over
    the same config (the gate session's, then `run_experiment`'s) register nothing twice."""
    names = [b.name for b in cfg.sources.backbone_list()]
    specs = [backbone_spec(name, i) for i, name in enumerate(names) if name != DEFAULT_BACKBONE_NAME]
    specs = [spec for spec in specs if _registry.get(spec.name) != spec]
    builtin = _registry.pop(DEFAULT_BACKBONE_NAME, None) if DEFAULT_BACKBONE_NAME not in names else None
    try:
        with registered(*specs):
            yield names
    finally:
        if builtin is not None:
            _registry[DEFAULT_BACKBONE_NAME] = builtin


@contextlib.contextmanager
def deciding_only(name: str) -> Iterator[None]:
    """Inside the block the deciding source `name` is the only one registered (the other backbones
    step aside), so that one backbone's own decision names only it."""
    others = {n: spec for n, spec in _registry.items() if spec.decides and n != name}
    for n in others:
        del _registry[n]
    try:
        yield
    finally:
        _registry.update(others)


def all_sources() -> list[SourceSpec]:
    """Every registered source, in report order."""
    return sorted(_registry.values(), key=lambda spec: (spec.order, spec.name))


def source_spec(name: str) -> Optional[SourceSpec]:
    """The registered source called `name`, or None (e.g. an external file's prefix)."""
    return _registry.get(name)


def source_of(representation: str) -> str:
    """'ssl' for 'ssl:layer_06': the source is the name's prefix."""
    return representation.partition(":")[0]


def enabled_sources(cfg: "Stage15Config") -> list[SourceSpec]:
    """Registered sources whose config section is enabled, in report order."""
    return [spec for spec in all_sources() if spec.enabled(cfg)]


def reads_text(cfg: "Stage15Config") -> bool:
    """Whether an enabled source reads the transcripts (then an empty one is an error at validation)."""
    return any(spec.reads_text for spec in enabled_sources(cfg))


def role_of(source: str) -> Role:
    """A registered source's role; any other source (an external file's prefix) is a reference."""
    spec = source_spec(source)
    return spec.role if spec is not None else Role.REFERENCE


def decides(source: str) -> bool:
    return role_of(source) is Role.DECIDES


def deciding_sources() -> list[str]:
    """Names of the sources whose layers make the decision (the backbone), in report order."""
    return [spec.name for spec in all_sources() if spec.decides]


def deciding_label(representations: Iterable[str] = ()) -> str:
    """How sentences name the deciding sources: 'backbone' (or 'backbone or tts2'). Given the run's
    `representations`, the deciding sources among them ('planted' in the GO demo); otherwise every
    registered one but synthetic stand-ins."""
    present = {source_of(r) for r in representations}
    names = [s for s in deciding_sources() if s in present] or [s for s in deciding_sources() if not _registry[s].synthetic]
    return " or ".join(names) or "deciding"


def reference_label() -> str:
    """The registered references, for sentences: 'ssl, ecapa, acoustic'."""
    return ", ".join(spec.name for spec in all_sources() if not spec.decides)


def source_sort_key(source: str) -> tuple:
    """Registered sources in their order, then any other source alphabetically."""
    spec = source_spec(source)
    return (0, spec.order, source) if spec is not None else (1, 0, source)


def layer_sort_key(source: str, layer: str) -> tuple:
    spec = source_spec(source)
    return spec.layer_key(layer) if spec is not None else natural_layer_key(layer)


def source_style(source: str) -> tuple[str, str]:
    """(colour, marker) of a source in the figures."""
    spec = source_spec(source)
    return (spec.colour, spec.marker) if spec is not None else (UNREGISTERED_COLOUR, UNREGISTERED_MARKER)


def configured_layer_order(cfg: "Stage15Config") -> dict[str, list[str]]:
    """source → the layers its config lists, in that order (the report's row order within a source)."""
    order = {spec.name: spec.configured_layers(cfg) for spec in all_sources()}
    return {name: layers for name, layers in order.items() if layers is not None}


def random_weights_deciding(cfg: "Stage15Config") -> bool:
    """Does an enabled deciding source run on randomly initialised weights?"""
    return any(spec.decides and spec.random_weights(cfg) for spec in enabled_sources(cfg))


def _named(spec: SourceSpec) -> str:
    """'backbone' for the single backbone, 'backbone csm1b' for a named one."""
    return spec.name if spec.name == DEFAULT_BACKBONE_NAME or not isinstance(spec, BackboneSourceSpec) else f"backbone {spec.name}"


def random_weights_caveats(cfg: "Stage15Config") -> list[str]:
    """Why the enabled sources make the run not a scientific result: randomly initialised weights, and
    synthetic stand-ins (their `synthetic` sentence).

    A deciding source gets its own sentence ("the backbone has randomly initialised weights (checkpoint
    'tiny-random')"); references share one ("reference source(s) ssl, ecapa have ...").
    """
    random = [spec for spec in enabled_sources(cfg) if spec.random_weights(cfg)]
    out = [f"the {_named(s)} has randomly initialised weights ({s.weights} '{TINY_RANDOM}')" for s in random if s.decides]
    refs = [s for s in random if not s.decides]
    if refs:
        fields = " / ".join(dict.fromkeys(str(s.weights) for s in refs))
        names = ", ".join(s.name for s in refs)
        out.append(f"reference source(s) {names} have randomly initialised weights ({fields} '{TINY_RANDOM}')")
    return out + [s.synthetic for s in enabled_sources(cfg) if s.synthetic]
