"""Length-bucketed audio batches decoded ahead of the model, for every audio feature source.

    for batch in prefetched_batches(utterances, batch_size, sample_rate=16000, num_workers=0):
        batch.utterances, batch.wavs          # the model runs on these while the next batch decodes

Batches come from `length_sorted_batches` (similar durations, longest first: little padding). Audio
is decoded and resampled ahead of use: by `num_workers` DataLoader processes, or with 0 workers by one
background thread (soundfile and soxr release the GIL), so decoding overlaps the forward pass either
way. A file that cannot be read is one error naming the utterance (of the class the caller names),
raised in the caller's process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from stage1_5.data.manifest import Utterance, length_sorted_batches
from stage1_5.errors import DatasetError, Stage15Error


@dataclass
class AudioBatch:
    """One batch: its utterances and their mono float32 waveforms at the requested rate."""

    utterances: list[Utterance]
    wavs: list[np.ndarray] = field(repr=False)

    def audio_seconds(self, sample_rate: int) -> float:
        return float(sum(len(w) for w in self.wavs)) / sample_rate


@dataclass
class _Loaded:
    utterances: list[Utterance]
    wavs: list[Optional[np.ndarray]] = field(repr=False)
    error: Optional[str] = None  # raised in the caller's process: a worker's exception arrives as a traceback dump


def _load(batch: list[Utterance], sample_rate: int) -> _Loaded:
    wavs = []
    for utt in batch:
        try:
            wavs.append(utt.load_audio(sample_rate))
        except (OSError, ValueError, RuntimeError) as err:
            return _Loaded(batch, [], f"utterance {utt.id}: cannot read audio {utt.audio_path}: {err}")
    return _Loaded(batch, wavs)


class _BatchAudioDataset(Dataset):
    """Item i = batch i with its audio decoded and resampled (runs in DataLoader workers)."""

    def __init__(self, batches: list[list[Utterance]], sample_rate: int):
        self.batches = batches
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> _Loaded:
        return _load(self.batches[index], self.sample_rate)


def _threaded(batches: list[list[Utterance]], sample_rate: int, depth: int) -> Iterator[_Loaded]:
    """Decode up to `depth` batches ahead in one background thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio-prefetch") as pool:
        pending = [pool.submit(_load, b, sample_rate) for b in batches[:depth]]
        for i in range(len(batches)):
            loaded = pending.pop(0).result()
            if i + depth < len(batches):
                pending.append(pool.submit(_load, batches[i + depth], sample_rate))
            yield loaded


def prefetched_batches(
    utterances: Sequence[Utterance],
    batch_size: int,
    *,
    sample_rate: int,
    num_workers: int = 0,
    depth: int = 2,
    error: type[Stage15Error] = DatasetError,
) -> Iterator[AudioBatch]:
    """Length-bucketed batches with their audio, decoded `depth` batches ahead (see the module
    docstring); `depth=0` decodes each batch in the caller's thread when it is needed (no overlap)."""
    batches = list(length_sorted_batches(utterances, batch_size))
    if depth == 0:
        stream: Iterator[_Loaded] = (_load(b, sample_rate) for b in batches)
    elif num_workers:
        # batch_size=None: items are whole batches already. Workers are spawned, not forked: a fork
        # taken while torch's or a decoder's threads hold a lock was seen to hang a worker forever.
        loader = DataLoader(
            _BatchAudioDataset(batches, sample_rate),
            batch_size=None,
            num_workers=num_workers,
            prefetch_factor=depth,
            multiprocessing_context="spawn",
        )
        stream = iter(loader)
    else:
        stream = _threaded(batches, sample_rate, depth)
    for loaded in stream:
        if loaded.error:
            raise error(loaded.error)
        yield AudioBatch(loaded.utterances, loaded.wavs)  # type: ignore[arg-type]
