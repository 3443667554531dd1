"""Qwen3-TTS speaker encoder (ECAPA-TDNN) over a padded batch, equal to one utterance at a time.

The package's `extract_speaker_embedding` takes one waveform: its ECAPA pads every convolution by
reflection at the utterance's own ends, and its squeeze-excitation means and attentive statistics
pooling run over every frame, so zero-padding a batch would change each x-vector. `speaker_embeddings`
runs the same modules, with the same weights, on a right-padded batch of log-mels and keeps each
utterance's own view: every convolution reads its input through a per-utterance reflection index
(`_reflect_index`) instead of padding, and the time means and the attention softmax are masked to
the utterance's frames. Frames past an utterance's end hold values that nothing valid ever reads.
The result equals the one-at-a-time path to float rounding (tested against the package).
"""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEL = dict(n_fft=1024, num_mels=128, hop_size=256, win_size=1024, fmin=0, fmax=12000)
"""The log-mel settings of `Qwen3TTSForConditionalGeneration.extract_speaker_embedding` (at 24 kHz)."""


def log_mels(model: nn.Module, wavs: Sequence[np.ndarray], sample_rate: int) -> list[torch.Tensor]:
    """Each waveform's `[frames, 128]` log-mel, computed alone by the `mel_spectrogram` of `model`'s
    own module, as `extract_speaker_embedding` does (cheap next to the ECAPA)."""
    mel_spectrogram = importlib.import_module(type(model).__module__).mel_spectrogram
    return [mel_spectrogram(torch.from_numpy(np.asarray(w, dtype=np.float32)).unsqueeze(0), sampling_rate=sample_rate, **MEL)[0].T for w in wavs]


def _reflect_index(lengths: torch.Tensor, width: int, pad: int) -> torch.Tensor:
    """`[batch, width + 2 pad]` source frames: position j reads frame j - pad, reflected at 0 and at
    each utterance's last frame (PyTorch's 'reflect' padding per utterance), clamped past that."""
    q = torch.arange(-pad, width + pad, device=lengths.device).expand(len(lengths), -1)
    last = (lengths - 1).unsqueeze(1)
    q = q.abs()
    q = torch.where(q > last, 2 * last - q, q)
    return q.clamp(min=0).minimum(last)


def _conv(conv: nn.Conv1d, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`conv` (padding='same', reflect) over `x` `[batch, channels, time]` with per-utterance reflection."""
    pad = conv.dilation[0] * (conv.kernel_size[0] - 1) // 2
    if pad:
        index = _reflect_index(lengths, x.shape[2], pad)
        x = x.gather(2, index.unsqueeze(1).expand(-1, x.shape[1], -1))
    return F.conv1d(x, conv.weight, conv.bias, stride=conv.stride, dilation=conv.dilation, groups=conv.groups)


def _tdnn(block: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return block.activation(_conv(block.conv, x, lengths))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum(2, keepdim=True) / mask.sum(2, keepdim=True)


def _se_res2net(block: nn.Module, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    residual = x
    x = _tdnn(block.tdnn1, x, lengths)
    res2 = block.res2net_block
    outputs, out = [], None
    for i, part in enumerate(torch.chunk(x, res2.scale, dim=1)):
        if i == 0:
            out = part
        elif i == 1:
            out = _tdnn(res2.blocks[i - 1], part, lengths)
        else:
            out = _tdnn(res2.blocks[i - 1], part + out, lengths)
        outputs.append(out)
    x = _tdnn(block.tdnn2, torch.cat(outputs, dim=1), lengths)
    se = block.se_block
    s = se.sigmoid(se.conv2(se.relu(se.conv1(_masked_mean(x, mask)))))
    return x * s + residual


def _attentive_pooling(asp: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`AttentiveStatisticsPooling.forward` with the utterances' own frame masks."""
    weights = mask / mask.sum(2, keepdim=True)
    mean = (weights * x).sum(2)
    std = torch.sqrt((weights * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(asp.eps))
    width = x.shape[2]
    attention = torch.cat([x, mean.unsqueeze(2).expand(-1, -1, width), std.unsqueeze(2).expand(-1, -1, width)], dim=1)
    attention = asp.conv(asp.tanh(asp.tdnn(attention)))  # kernel size 1: no padding to correct
    attention = F.softmax(attention.masked_fill(mask == 0, float("-inf")), dim=2)
    mean = (attention * x).sum(2)
    std = torch.sqrt((attention * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(asp.eps))
    return torch.cat((mean, std), dim=1).unsqueeze(2)


def encode_mels(encoder: nn.Module, mels: Sequence[torch.Tensor]) -> torch.Tensor:
    """`Qwen3TTSSpeakerEncoder` over utterances of any lengths in one padded batch: `[batch, enc_dim]`.
    `mels`: each `[frames, mel_dim]`, already in the encoder's dtype and device."""
    lengths = torch.tensor([m.shape[0] for m in mels], device=mels[0].device)
    x = nn.utils.rnn.pad_sequence(list(mels), batch_first=True).transpose(1, 2)  # [batch, mel, time]
    mask = (torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]).to(x.dtype).unsqueeze(1)
    hidden = []
    for i, block in enumerate(encoder.blocks):
        x = _tdnn(block, x, lengths) if i == 0 else _se_res2net(block, x, lengths, mask)
        hidden.append(x)
    x = _tdnn(encoder.mfa, torch.cat(hidden[1:], dim=1), lengths)
    return encoder.fc(_attentive_pooling(encoder.asp, x, mask)).squeeze(-1)


def speaker_embeddings(model: nn.Module, wavs: Sequence[np.ndarray], sample_rate: int) -> torch.Tensor:
    """x-vectors of waveforms at `sample_rate` (24 kHz), `[batch, hidden]`, in one encoder pass;
    `model`: a `Qwen3TTSForConditionalGeneration` (see the module docstring)."""
    mels = [m.to(device=model.device, dtype=model.dtype) for m in log_mels(model, wavs, sample_rate)]
    return encode_mels(model.speaker_encoder, mels)
