"""The recording-confound probe: can accent be predicted from recording conditions alone?

It is the project's own speaker-disjoint accent probe (`evaluate_representations`, the same folds,
inner C selection and speaker-level permutation test), fitted on per-file recording statistics
(`stage1_5.data.recording`) instead of model features. If it beats chance significantly, an accent
probe on any representation may be reading the microphones, not the accents. Only the probe's public
`accent_f1` and `p_value` are used.

Recording conditions belong to a speaker or a session, so a few utterances per speaker carry them:
the probe reads at most `dataset.recording_probe.utterances_per_speaker` of each speaker's utterances
(first texts in text order, so speakers are compared on the same texts where texts are shared), which
keeps it to seconds on large sets. Verdicts are cached by dataset hash and probe settings.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from stage1_5.config import DatasetConfig, ProbeConfig, RecordingProbeConfig
from stage1_5.data.confounds import RecordingProbe, raise_if_confounded
from stage1_5.data.dataset import Dataset
from stage1_5.data.manifest import UtteranceSet
from stage1_5.data.recording import recording_matrix
from stage1_5.errors import ConfigError, ProbeError
from stage1_5.hashing import json_digest
from stage1_5.io import atomic_write_json
from stage1_5.probes.protocol import evaluate_representations

REPRESENTATION = "recording:statistics"
RECORDING_PROBE_FOLDER = "recording_probes"
"""Cached verdicts, inside the dataset work folder (beside the unpacked zips and the file index)."""
_CACHE_VERSION = "recording-probe-v1"


def probe_config(config: RecordingProbeConfig, min_speakers_per_accent: int) -> ProbeConfig:
    """A small ProbeConfig: a few seeds, grouped speaker folds (one speaker per accent per fold when an
    accent has no more speakers than folds), the configured permutations, no bootstrap."""
    outer = config.outer_folds if min_speakers_per_accent > config.outer_folds else "speaker_per_accent"
    return ProbeConfig(seeds=config.seeds, permutations=config.permutations, bootstrap=0, outer_folds=outer, device="cpu")


def probe_sample(utterances: UtteranceSet, per_speaker: int) -> np.ndarray:
    """Row indices of at most `per_speaker` utterances per speaker: the first by (text_id, utt_id)."""
    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_speaker.setdefault(u.speaker, []).append(i)
    chosen = []
    for rows in by_speaker.values():
        rows.sort(key=lambda i: (utterances[i].text_id, utterances[i].id))
        chosen += rows[:per_speaker]
    return np.sort(np.asarray(chosen, dtype=np.int64))


@contextmanager
def _one_thread() -> Iterator[None]:
    """A probe this small runs many times faster on one torch thread than on several (thread overhead)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_reachable(config: RecordingProbeConfig, alpha: float) -> None:
    smallest = 1.0 / (1 + config.permutations)
    if smallest >= alpha:
        need = int(np.ceil(1.0 / alpha))
        raise ConfigError(
            f"dataset.recording_probe.permutations={config.permutations} cannot give p < experiment.alpha={alpha:g} "
            f"(the smallest p is {smallest:.3g}); use at least {need}"
        )


def probe_recording_confound(
    dataset: Dataset, config: DatasetConfig, alpha: float, *, cache_dir: Optional[Path] = None
) -> tuple[Optional[RecordingProbe], Optional[str]]:
    """(the probe's verdict, None), or (None, why it could not run)."""
    settings = config.recording_probe
    _check_reachable(settings, alpha)
    sample = probe_sample(dataset.utterances, settings.utterances_per_speaker)
    utterances = UtteranceSet(dataset.utterances[int(i)] for i in sample)
    meta = utterances.to_frame()
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"{json_digest([_CACHE_VERSION, dataset.content_hash, settings.model_dump(mode='json')])}.json"
        try:
            found = json.loads(cache.read_text(encoding="utf-8"))
            return RecordingProbe(**found, alpha=alpha), None
        except (OSError, ValueError, TypeError):
            pass
    _, X = recording_matrix([dataset.recordings[u.id] for u in utterances])
    min_speakers = min(dataset.summary.speakers_per_accent.values())
    try:
        with _one_thread():
            results = evaluate_representations({REPRESENTATION: X}, meta, probe_config(settings, min_speakers), progress=False)
    except ProbeError as err:
        return None, f"the recording probe could not run: {err}"
    row = results.metrics.iloc[0]
    found = {
        "accent_f1": float(row["accent_f1"]),
        "p_value": float(row["p_value"]),
        "permutations": settings.permutations,
        "n_utterances": len(utterances),
        "n_speakers": int(meta["speaker"].nunique()),
    }
    if cache is not None:
        atomic_write_json(cache, found)
    return RecordingProbe(**found, alpha=alpha), None


def attach_recording_probe(dataset: Dataset, config: DatasetConfig, *, alpha: float, work_dir: Optional[Path] = None) -> Dataset:
    """The dataset with the recording probe's verdict (or why it could not run) in its confound report.

    `work_dir`: the dataset work folder (the one `load_dataset` used), where verdicts are cached.
    """
    report = dataset.confounds
    if report.recording is None:
        return dataset
    cache_dir = Path(work_dir) / RECORDING_PROBE_FOLDER if work_dir is not None else None
    probe, note = probe_recording_confound(dataset, config, alpha, cache_dir=cache_dir)
    return dataclasses.replace(dataset, confounds=report.with_probe(probe, note))


def check_confounds(dataset: Dataset, config: DatasetConfig, *, alpha: float, work_dir: Optional[Path] = None) -> Dataset:
    """Every confound check: the recording probe joins the dataset's confound report, then
    `dataset.confounds: error` turns any confound into a `ConfoundError` (exit 2)."""
    dataset = attach_recording_probe(dataset, config, alpha=alpha, work_dir=work_dir)
    raise_if_confounded(dataset.confounds)
    return dataset
