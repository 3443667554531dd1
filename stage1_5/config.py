"""Typed experiment configuration (`config/*.yaml`), validated once at the boundary.

Every section forbids unknown keys; a bad file raises one `ConfigError` naming the file and the
dotted key. Relative paths written in the file are taken relative to the file's folder
(`resolve_config_paths`), so a config works from any working directory; defaults of keys the file
does not set stay relative to the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from stage1_5.errors import ConfigError
from stage1_5.hashing import json_digest

DEMO_DATASET = "demo"
"""`dataset.path: demo` names the dataset embedded in the package."""

TINY_RANDOM = "tiny-random"
"""Checkpoint name for a tiny randomly initialised model of the real architecture (offline, CPU)."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RecordingProbeConfig(StrictModel):
    """The recording-confound probe: the project's speaker-disjoint accent probe fitted on per-file
    recording statistics (sample rate, codec, level, noise floor, bandwidth, ...) instead of features."""

    seeds: int = Field(3, ge=1, description="Repetitions of the outer CV.")
    permutations: int = Field(199, ge=1, description="Speaker-level permutations; need 1/(1+B) < experiment.alpha.")
    outer_folds: int = Field(5, ge=2, description="Grouped speaker folds; accents with fewer speakers use one speaker per accent per fold.")
    utterances_per_speaker: int = Field(4, ge=1, description="Utterances probed per speaker (recording conditions are per speaker or session).")


class DatasetConfig(StrictModel):
    path: str = Field(DEMO_DATASET, description="Folder or dataset.zip; 'demo' = the embedded demo set.")
    audio_required: bool = Field(True, description="False: audio may be absent (precomputed features only).")
    max_zip_uncompressed_bytes: int = Field(50 * 2**30, gt=0, description="Refuse zips that unpack to more.")
    max_zip_inflation_ratio: float = Field(
        100.0, gt=1, description="Refuse zips whose members inflate more than this many times (zip bombs), before extracting."
    )
    allow_symlinks_into: list[str] = Field(
        default_factory=list, description="Folders that symbolic links in the dataset may lead into (e.g. a wav/ on another disk)."
    )
    min_accents: int = Field(3, ge=2, description="Design minimum; fewer gives a warning, not an error.")
    min_speakers_per_accent: int = Field(8, ge=2, description="Design minimum; fewer gives a warning (every accent needs at least 2: an error).")
    min_texts_per_speaker: int = Field(30, ge=1, description="Design minimum; fewer gives a warning, not an error.")
    min_shared_texts: int = Field(
        30, ge=1, description="Texts every accent should read; fewer (unless all texts are shared) is a text confound."
    )
    max_imbalance: float = Field(1.5, ge=1, description="Largest / smallest speakers or utterances per accent before a warning.")
    confounds: Literal["warn", "error"] = Field("warn", description="'error': text and recording confounds stop the run (exit 2).")
    recording_probe: RecordingProbeConfig = Field(default_factory=RecordingProbeConfig)
    min_duration_s: float = Field(0.1, gt=0, description="Shorter audio is an error (empty).")
    max_duration_s: float = Field(60.0, gt=0, description="Longer audio: a warning at `dataset validate`, an error at `run`.")
    silence_dbfs: float = Field(-60.0, lt=0, description="RMS below this level is an error (silent).")
    clipped_fraction: float = Field(0.01, gt=0, le=1, description="More samples than this at full scale is an error.")


Pooling = Literal["mean", "mean_std"]
ModelDtype = Literal["auto", "float32", "bfloat16", "float16"]
"""Model compute dtype; 'auto' is float32 on a CPU, bfloat16 on a GPU of compute capability >= 8.0, float16 below."""
AttnImplementation = Literal["auto", "sdpa", "eager", "flash_attention_2"]
FeatureDtype = Literal["float32", "float16"]
"""Storage dtype of the feature store."""


class BackboneConfig(StrictModel):
    enabled: bool = Field(True, description="Extract and probe the backbone (the source that decides).")
    checkpoint: str = Field("Qwen/Qwen3-TTS-12Hz-1.7B-Base", description="Hub name, local folder, or 'tiny-random'.")
    family: Optional[str] = Field(
        None,
        description="Backbone family (qwen3_tts, csm); None = the one config.json's model_type names ('tiny-random': qwen3_tts).",
    )
    layers: list[str] = Field(
        default_factory=lambda: [
            "text_encoder_out",
            "decoder_block_02",
            "decoder_block_04",
            "decoder_block_08",
            "decoder_block_12",
            "decoder_block_16",
            "decoder_block_20",
            "pre_vocoder",
        ],
        min_length=1,
        description="Layer aliases to probe (`stage1_5 layers` lists them) or module paths; one teacher-forced pass gives them all.",
    )
    dtype: ModelDtype = Field(
        "auto",
        description="Talker compute dtype. auto: float32 on CPU, bfloat16 on GPUs of compute capability >= 8.0, "
        "float16 below (the speech tokenizer always runs in float32).",
    )
    attn_implementation: AttnImplementation = Field(
        "auto", description="auto: flash_attention_2 when flash-attn is installed and the GPU runs it, else sdpa."
    )
    device: str = Field("auto", description="auto: cuda when available, else cpu; or a torch device such as cuda:1.")
    batch_size: int = Field(8, ge=1, description="Utterances per teacher-forced pass; halved on CUDA out-of-memory.")
    num_workers: Optional[int] = Field(None, ge=0, description="Background audio-decoding processes; None = 2 on CUDA, 0 on CPU.")
    pooling: Pooling = Field("mean", description="One vector per utterance: the mean over positions, or mean and SD concatenated (2x wide).")
    positions: Literal["audio", "text", "all"] = Field("audio", description="Which sequence positions are pooled: the audio codes, the text, or both.")
    speaker_slot: Literal["xvector", "zero"] = Field(
        "xvector", description="xvector: the speaker encoder's x-vector (Base checkpoints only); zero: an empty slot."
    )
    language: Optional[str] = Field(None, description="Language tag for the codec track (None = auto).")
    seed: int = Field(0, description="Initialisation seed for 'tiny-random' (default: the run's seed).")


class SSLConfig(StrictModel):
    enabled: bool = Field(True, description="Extract the SSL reference (WavLM / HuBERT / wav2vec2 layers).")
    model: str = Field("microsoft/wavlm-base-plus", description="Hub name, local folder, or 'tiny-random'.")
    layers: Union[Literal["all"], list[str]] = Field("all", description="'all' hidden states, or a list such as [layer_06, layer_12].")
    pooling: Pooling = Field("mean", description="Mean over frames, or mean and SD concatenated (2x wide).")
    dtype: ModelDtype = Field("auto", description="Compute dtype; auto as for the backbone.")
    device: str = Field("auto", description="auto: cuda when available, else cpu; or a torch device.")
    batch_size: int = Field(8, ge=1, description="Utterances per forward pass.")
    seed: int = Field(0, description="Initialisation seed for 'tiny-random' (default: the run's seed).")


class EcapaConfig(StrictModel):
    enabled: bool = Field(True, description="Extract the ECAPA speaker-embedding reference.")
    model: str = Field("speechbrain/spkrec-ecapa-voxceleb", description="Hub name, local folder, or 'tiny-random'.")
    device: str = Field("auto", description="auto: cuda when available, else cpu; or a torch device.")
    batch_size: int = Field(16, ge=1, description="Utterances per forward pass.")
    seed: int = Field(0, description="Initialisation seed for 'tiny-random' (default: the run's seed).")


class AcousticConfig(StrictModel):
    enabled: bool = Field(True, description="Compute the classic acoustic reference (no model).")
    features: list[Literal["mfcc_stats", "egemaps"]] = Field(
        default_factory=lambda: ["mfcc_stats"], min_length=1, description="mfcc_stats: means and SDs of MFCC, delta and delta-delta; egemaps: the eGeMAPS set (opensmile)."
    )
    n_mfcc: int = Field(20, ge=1, le=128, description="MFCC coefficients (mfcc_stats is 6x this wide).")
    batch_size: int = Field(16, ge=1, description="Utterances per batch (computed one at a time on the CPU).")


class Ge2eConfig(StrictModel):
    enabled: bool = Field(False, description="Resemblyzer's pretrained GE2E speaker encoder (weights in the resemblyzer wheel, offline).")
    device: str = Field("auto", description="auto: cuda when available, else cpu; or a torch device.")
    batch_size: int = Field(16, ge=1, description="Utterances per forward pass.")


class PlantedConfig(StrictModel):
    enabled: bool = Field(False, description="The GO demo's synthetic planted-accent vectors (embedded demo dataset only); they decide in the backbone's stead.")
    layers: list[str] = Field(
        default_factory=lambda: ["decoder_block_00", "decoder_block_08"], min_length=1, description="Planted layers to probe (decoder_block_08 carries the accent)."
    )
    batch_size: int = Field(64, ge=1, description="Utterances per batch.")


DEFAULT_BACKBONE_NAME = "backbone"
"""The representation prefix of `sources.backbone` (a one-item `sources.backbones`)."""


class NamedBackboneConfig(BackboneConfig):
    """One item of `sources.backbones`: the backbone settings plus the representation prefix."""

    name: str = Field(
        ..., pattern=r"^[a-z][a-z0-9_]*$", description="Representation prefix (`<name>:decoder_block_08`), e.g. qwen17, csm1b."
    )


class SourcesConfig(StrictModel):
    backbone: BackboneConfig = Field(default_factory=BackboneConfig, description="The TTS backbone (Qwen3-TTS by default): its layers make the decision.")
    backbones: Optional[list[NamedBackboneConfig]] = Field(
        None,
        min_length=1,
        description="Several backbones, each deciding on its own and compared side by side; replaces `backbone` "
        "(which means a one-item list named 'backbone').",
    )
    ssl: SSLConfig = Field(default_factory=SSLConfig, description="Reference: a self-supervised speech model (WavLM by default), layer by layer.")
    ecapa: EcapaConfig = Field(default_factory=EcapaConfig, description="Reference: the ECAPA-TDNN speaker embedding.")
    acoustic: AcousticConfig = Field(default_factory=AcousticConfig, description="Reference: classic acoustic statistics (no model).")
    ge2e: Ge2eConfig = Field(default_factory=Ge2eConfig, description="Reference: a real pretrained speaker encoder (resemblyzer's GE2E), offline.")
    planted: PlantedConfig = Field(default_factory=PlantedConfig, description="The GO demo's planted-accent vectors, deciding in the backbone's stead.")
    external: list[str] = Field(default_factory=list, description="Your own features: .npz or .parquet keyed by utt_id.")

    @model_validator(mode="before")
    @classmethod
    def _backbones_inherit_the_seed(cls, data: Any) -> Any:
        """Each listed backbone without a seed takes `backbone.seed` (the run's seed by default)."""
        if not isinstance(data, dict) or not isinstance(data.get("backbones"), list):
            return data
        backbone = data.get("backbone")
        seed = backbone.get("seed") if isinstance(backbone, dict) else getattr(backbone, "seed", None)
        if seed is None:
            return data
        items = [{**item, "seed": seed} if isinstance(item, dict) and "seed" not in item else item for item in data["backbones"]]
        return {**data, "backbones": items}

    @model_validator(mode="after")
    def _check_backbones(self) -> "SourcesConfig":
        if self.backbones is None:
            return self
        if self.backbone != BackboneConfig(seed=self.backbone.seed):
            raise ValueError("set either backbone or backbones, not both (backbone is a one-item backbones list)")
        names = [b.name for b in self.backbones]
        taken = (set(type(self).model_fields) - {"backbone", "backbones"}) & set(names)
        if taken:
            raise ValueError(f"backbones: name {sorted(taken)[0]!r} is a reference source's; choose another")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"backbones: name {twice[0]!r} is used twice; each backbone needs its own name")
        return self

    def backbone_list(self) -> list[NamedBackboneConfig]:
        """Every configured backbone, named: `backbones`, or `backbone` named 'backbone'."""
        if self.backbones is not None:
            return list(self.backbones)
        return [NamedBackboneConfig(**{**self.backbone.model_dump(), "name": DEFAULT_BACKBONE_NAME})]  # `backbone` may hold a named copy


class ProbeConfig(StrictModel):
    seeds: int = Field(5, ge=1, description="Repetitions of the outer CV with different fold assignments.")
    outer_folds: Union[Literal["speaker_per_accent"], int] = Field(
        "speaker_per_accent",
        description=(
            "'speaker_per_accent' holds out one speaker per accent per fold (up to speaker_fold_limit speakers in the smallest "
            "accent; beyond, large_design_folds grouped folds); an int k gives k grouped folds."
        ),
    )
    speaker_fold_limit: int = Field(
        20,
        ge=2,
        description=(
            "With outer_folds 'speaker_per_accent': when the smallest accent has more speakers than this, the outer CV uses "
            "large_design_folds grouped folds instead (speakers never split, accents balanced), so the fold count stops growing with the corpus."
        ),
    )
    large_design_folds: int = Field(5, ge=2, description="Grouped speaker folds of a design beyond speaker_fold_limit.")
    inner_folds: int = Field(3, ge=2, description="Speaker-grouped inner CV choosing C.")
    c_grid: list[float] = Field(
        default_factory=lambda: [0.01, 0.1, 1.0, 10.0], min_length=1, description="Inverse L2 strengths the inner CV chooses from (one value: no inner CV)."
    )
    text_folds: int = Field(2, ge=2, description="Texts are split into this many groups for the crossed text-drop folds.")
    permutations: int = Field(
        199, ge=0, description="Speaker-level label permutations for p-values (0 = skip; the smallest p is 1/(1+B), so GO needs 1/(1+B) < alpha)."
    )
    bootstrap: int = Field(
        200, ge=0, description=(
            "Speaker-bootstrap resamples of the text-drop and leakage intervals (0 = no intervals). The F1 interval's refits: with "
            "interval_method jackknife, speakers of a large accent are deleted in groups so that fold seeds × units stays within this "
            "number; with "
            "normal or percentile, one refit of the seed-0 CV per resample."
        ),
    )
    interval_level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the F1, text-drop and leakage intervals.")
    interval_method: Literal["jackknife", "normal", "percentile"] = Field(
        "jackknife",
        description=(
            "F1 interval: jackknife = point ± z·SE of the delete-one-speaker jackknife refitting every fold seed's CV (calibrated and "
            "narrowest, see docs/statistics.md); normal = point ± z·SD of the seed-0 refit bootstrap; percentile = that bootstrap's "
            "quantiles. Text drop and leakage: normal or percentile over their speaker bootstrap (normal under jackknife)."
        ),
    )
    sequential: bool = Field(
        True,
        description=(
            "Besag–Clifford stop: a family whose best layer's family-wise p is already settled ≥ experiment.alpha after the "
            "first permutations runs no more (null layers cost a fraction); every p < alpha decision equals the full run's."
        ),
    )
    leak_chance_permutations: int = Field(
        20, ge=1, description="Within-accent speaker shuffles that estimate the leakage probe's chance accuracy."
    )
    speaker_id_max_speakers: int = Field(
        60,
        ge=2,
        description=(
            "The speaker-ID context probe (one class per speaker) is fitted on a fixed subsample of this many speakers, spread "
            "evenly over the accents, when the design has more (its cost grows with speakers × utterances); the report says so."
        ),
    )
    device: str = Field("auto", description="Where the probes are fitted: auto (cuda when available), cpu, cuda.")
    seed: int = Field(0, description="Seed of the folds, permutations and bootstrap (default: the run's seed).")

    @model_validator(mode="after")
    def _check(self) -> "ProbeConfig":
        if isinstance(self.outer_folds, int) and self.outer_folds < 2:
            raise ValueError("outer_folds must be 'speaker_per_accent' or an integer >= 2")
        if self.large_design_folds > self.speaker_fold_limit:
            raise ValueError(f"large_design_folds ({self.large_design_folds}) must not exceed speaker_fold_limit ({self.speaker_fold_limit})")
        if any(c <= 0 for c in self.c_grid):
            raise ValueError("c_grid values must be > 0")
        return self


class ExperimentConfig(StrictModel):
    """Decision thresholds (DESIGN §5)."""

    min_f1_go: float = Field(0.55, ge=0, le=1, description="Accent macro-F1 a backbone layer needs for GO.")
    min_f1_conditional: float = Field(0.45, ge=0, le=1, description="Accent macro-F1 a backbone layer needs for conditional GO.")
    nogo_f1: float = Field(0.40, ge=0, le=1, description="Below this best F1 the NOGO is clear; between it and min_f1_conditional, borderline.")
    leakage_margin_pp: float = Field(7.0, ge=0, le=100, description="Most speaker leakage above chance (percentage points) for GO.")
    leakage_margin_conditional_pp: float = Field(15.0, ge=0, le=100, description="Most speaker leakage above chance (pp) for conditional GO.")
    max_text_drop: float = Field(0.10, ge=0, le=1, description="Most F1 lost on texts the probe never saw (seen minus unseen).")
    alpha: float = Field(0.05, gt=0, lt=1, description="Family-wise level: GO and conditional GO need the max-over-backbone-layers permutation p < alpha.")
    strict: bool = Field(
        False, description="Gate the interval bounds: F1's lower bound, text drop's and leakage excess's upper bounds."
    )
    f1_scale: Literal["chance_adjusted", "absolute"] = Field(
        "chance_adjusted",
        description="chance_adjusted: the F1 thresholds are read at reference_accents accents and applied on (F1 − 1/K)/(1 − 1/K); absolute: as written.",
    )
    leakage_scale: Literal["chance_adjusted", "absolute"] = Field(
        "chance_adjusted",
        description="chance_adjusted: the leakage margins are read at reference_speakers_per_accent and scaled by the measured room above chance.",
    )
    reference_accents: int = Field(3, ge=2, description="The number of accents at which the F1 thresholds read as written.")
    reference_speakers_per_accent: int = Field(
        8, ge=2, description="The speakers per accent at which the leakage margins read as written."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ExperimentConfig":
        if not self.nogo_f1 <= self.min_f1_conditional <= self.min_f1_go:
            raise ValueError("need nogo_f1 <= min_f1_conditional <= min_f1_go")
        if self.leakage_margin_pp > self.leakage_margin_conditional_pp:
            raise ValueError("need leakage_margin_pp <= leakage_margin_conditional_pp")
        return self


class Stage2Config(StrictModel):
    """Stage 2 handoff after the decision (accent directions, concept erasure, layer similarity).

    The directions reuse the probes' C grid, inner folds and fold seeds (`probes:`), so that the C they
    are refit at is the one the protocol's inner CV would choose.
    """

    enabled: bool = Field(True, description="Write artifacts/stage2/ and the report's Stage 2 section.")
    fold_seeds: int = Field(2, ge=1, description="Repetitions of the erasure folds with different speaker assignments.")
    erasure_folds: int = Field(
        2, ge=2, description="Speaker folds of the accent erasure: each holds out 1/k of every accent's speakers (at least 2)."
    )
    speaker_c: float = Field(1.0, gt=0, description="C of the within-accent speaker-ID probe (standardised L2 logistic regression).")
    bootstrap: int = Field(1000, ge=0, description="Cluster-bootstrap resamples over held-out speakers for the erasure intervals (0 = skip).")
    cka_rows: int = Field(2000, ge=10, description="At most this many held-out utterances (whole speakers) for the layer-similarity matrix.")
    seed: int = Field(0, description="Seed of the erasure folds, text splits and bootstrap (default: the run's seed).")


class OutputConfig(StrictModel):
    dir: str = Field("runs/stage1_5", description="Run output folder (report/, artifacts/, config/, zip).")
    cache_dir: str = Field(".stage1_5_cache", description="Content-addressed feature store shared by runs and gates.")
    feature_dtype: FeatureDtype = Field("float32", description="Storage dtype of cached features (float16 halves disk and RAM).")
    feature_chunk_size: int = Field(256, ge=1, description="Utterances per feature-store chunk: the most a killed extraction recomputes.")


Language = Literal["en", "pt-BR"]
"""Languages the report is written in (the words: `stage1_5.report.i18n`)."""


class ReportConfig(StrictModel):
    language: Language = Field(
        "en",
        description="Language of the Markdown and HTML report, its figures and the closing summary of `stage1_5 run`: "
        "'en' or 'pt-BR' (Brazilian Portuguese). Numbers, layer names and decision.json stay the same.",
    )


class Stage15Config(StrictModel):
    name: str = Field("stage1_5", description="The experiment's name, in the report's title.")
    seed: int = Field(
        0,
        frozen=True,
        description="The default of every section's seed (probes, random-weight models) when the config is built; a section's own seed wins.",
    )
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="Where the data is, the design minima and the checks run before any model.")
    sources: SourcesConfig = Field(default_factory=SourcesConfig, description="What is probed: the backbone, the reference models, your own feature files.")
    probes: ProbeConfig = Field(default_factory=ProbeConfig, description="The linear probes: folds, C grid, permutations, bootstrap.")
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    stage2: Stage2Config = Field(default_factory=Stage2Config)
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where the run folder and the shared cache go.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="How the report is written: its language.")

    @model_validator(mode="before")
    @classmethod
    def _sections_inherit_the_seed(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or info.field_name is not None:  # not on assigning one field
            return data
        return _with_default_seed(cls, data, data.get("seed", cls.model_fields["seed"].default))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def config_hash(self) -> str:
        """Hash of the resolved config (defaults filled in): changes whenever any setting does."""
        return json_digest(self.model_dump(mode="json"))


def _with_default_seed(model: type[BaseModel], data: dict[str, Any], seed: Any) -> dict[str, Any]:
    """`data` for `model` with `seed` filled into every nested section that has a seed field and sets none."""
    out = dict(data)
    for name, field in model.model_fields.items():
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            continue
        value = out.get(name, {})
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)  # revalidated from its explicitly set fields
        if not isinstance(value, dict):
            continue  # not a section: pydantic reports the type error with its dotted key
        if "seed" in section.model_fields and "seed" not in value:
            value = {**value, "seed": seed}
        out[name] = _with_default_seed(section, value, seed)
    return out


def error_text(error: Mapping[str, Any]) -> str:
    """pydantic's message for one error, without its 'Value error, ' prefix; unknown keys said so."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<top level>"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {key}: {error_text(first)}{more}"


def config_from_dict(data: Any, source: str = "<config>") -> Stage15Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return Stage15Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


CONFIG_PATH_KEYS = (
    ("dataset", "path"),
    ("dataset", "allow_symlinks_into"),
    ("sources", "external"),
    ("output", "dir"),
    ("output", "cache_dir"),
)
"""(section, key) of the config's file-system paths: relative values are resolved against the config
file's folder. Checkpoint and model names (`sources.<source>.checkpoint` / `.model`) are hub names or
local folders: they are resolved only when that folder exists beside the config."""

MODEL_KEYS = (("backbone", "checkpoint"), ("ssl", "model"), ("ecapa", "model"))
"""(source, key) under `sources:` that name a hub model or a local folder."""


def _beside(base: Path, value: str) -> str:
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def resolve_config_paths(data: Any, base: str | Path) -> Any:
    """A copy of a parsed config whose relative paths (`CONFIG_PATH_KEYS`, existing local model
    folders) are joined to `base`, the config file's folder; `dataset.path: demo` and hub names stay."""
    if not isinstance(data, dict):
        return data
    base = Path(base)
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, key in CONFIG_PATH_KEYS:
        block = out.get(section)
        if not isinstance(block, dict) or key not in block:
            continue
        value = block[key]
        if isinstance(value, str) and (section, key, value) != ("dataset", "path", DEMO_DATASET):
            block[key] = _beside(base, value)
        elif isinstance(value, list):
            block[key] = [_beside(base, v) if isinstance(v, str) else v for v in value]
    sources = out.get("sources")
    for source, key in MODEL_KEYS:
        block = sources.get(source) if isinstance(sources, dict) else None
        if isinstance(block, dict) and isinstance(block.get(key), str) and os.path.isdir(_beside(base, block[key])):
            block = sources[source] = dict(block)
            block[key] = _beside(base, block[key])
    return out


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice; `yaml.safe_load` would silently keep the last value."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load` semantics, except that a key given twice in one mapping is an error naming it
    and both lines (a merge key `<<` may still be overridden, as YAML intends)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first:
                        raise DuplicateKeyError(f"duplicate key {key!r} in lines {first[key]} and {line}")
                except TypeError:  # an unhashable key: the base class reports it
                    break
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str):
    """Parse YAML as `yaml.safe_load` does, refusing duplicate keys (`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_config(path: str | Path) -> Stage15Config:
    """Read and validate a YAML config; every problem is a `ConfigError` naming `path`. Relative paths
    in the file are resolved against its folder; an empty file is an error, not the defaults."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from None
    try:
        data = load_yaml(text)
    except DuplicateKeyError as err:
        raise ConfigError(f"{path}: {err} (the second would silently win; keep one)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; start from config/stage1_5.yaml (or config/demo.yaml for the demo)")
    return config_from_dict(resolve_config_paths(data, path.parent), str(path))
