"""Qwen3-TTS specifics: layer aliases, teacher-forced inputs, loading, and a tiny random model.

The talker is one decoder-only transformer over a dual-track sequence (text-track embedding +
codec-track embedding per position). We probe it by teacher forcing: the inputs are laid out
exactly as the package's own voice-clone prefill with `non_streaming_mode=True` and an empty
target text, i.e. the utterance is the (transcript, audio) reference:

    role (3)  | codec control (think/lang, speaker slot, pad) over tts_pad.. tts_bos
              | transcript tokens + tts_eos over codec_pad | codec_bos + tts_pad | one position per frame

and ONE `talker(inputs_embeds=..., attention_mask=..., use_cache=False)` call runs every block.
Nothing is generated. `../shared/notes/qwen3_tts.md` has the measured facts behind this layout.

The speech tokenizer is a plain attribute of the model (not a registered submodule), so its modules
are addressed under the `speech_tokenizer.model.` prefix and moved to the device explicitly.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from stage1_5.errors import FeatureError

if TYPE_CHECKING:  # qwen_tts imports take seconds and print a banner: import them lazily
    from qwen_tts import Qwen3TTSModel

SAMPLE_RATE = 24000
"""Qwen3-TTS audio rate (speech tokenizer and speaker encoder)."""

SPEECH_TOKENIZER_PREFIX = "speech_tokenizer.model."
TINY_TALKER_LAYERS = 4
"""The tiny model has talker blocks decoder_block_00..03."""

Axis = Literal["talker", "text", "frames"]
SpeakerSlot = Literal["xvector", "zero"]


# ----------------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerSite:
    """A requested layer: its name, the module whose output is captured, and that output's time axis.

    axis "talker": the talker sequence (pooled over `positions`); "text": the transcript tokens
    through `text_projection` (context-free); "frames": speech-tokenizer decoder frames (12.5 Hz).
    """

    name: str
    module_path: str
    axis: Axis


def _import_qwen_tts():
    """`import qwen_tts` without its import-time noise.

    qwen_tts prints a "flash-attn is not installed" banner on stdout, and the `sox` package it imports
    runs `sox -h` through a shell (whose "sox: not found" goes to fd 2) and logs a warning; none of it
    matters for probing, which never calls SoX.
    """
    import contextlib
    import io
    import logging
    import os
    import sys

    if "qwen_tts" not in sys.modules:
        logging.getLogger("sox").setLevel(logging.ERROR)
        saved_fd2 = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()):
                os.dup2(devnull.fileno(), 2)
                import qwen_tts  # noqa: F401
        finally:
            os.dup2(saved_fd2, 2)
            os.close(saved_fd2)
    return sys.modules["qwen_tts"]


def layer_aliases(tts: "Qwen3TTSModel") -> dict[str, LayerSite]:
    """Friendly names -> sites: text_encoder_out, decoder_block_NN (one per talker block), pre_vocoder."""
    n_layers = tts.model.config.talker_config.num_hidden_layers
    sites = [LayerSite("text_encoder_out", "talker.text_projection", "text")]
    sites += [LayerSite(f"decoder_block_{i:02d}", f"talker.model.layers.{i}", "talker") for i in range(n_layers)]
    sites.append(LayerSite("pre_vocoder", SPEECH_TOKENIZER_PREFIX + "decoder.pre_transformer", "frames"))
    return {s.name: s for s in sites}


def _axis_of(path: str) -> Optional[Axis]:
    """The time axis of a raw module path's output, or None when the module is outside the pass
    or its output is not `[batch, time, features]` on a known axis."""
    if path.endswith(("rotary_emb", "q_norm", "k_norm")) or ".rotary_emb." in path:  # not [batch, time, d]
        return None
    if path == "talker.text_projection" or path.startswith("talker.text_projection.") or path == "talker.model.text_embedding":
        return "text"
    if path.startswith("talker.model.layers.") or path in ("talker.model.norm", "talker.codec_head"):
        return "talker"
    pre_transformer = SPEECH_TOKENIZER_PREFIX + "decoder.pre_transformer"
    if path == pre_transformer or path.startswith(pre_transformer + "."):
        return "frames"
    return None


def named_modules(tts: "Qwen3TTSModel") -> dict[str, nn.Module]:
    """Every module by dotted path: the model's own, plus the speech tokenizer's under its prefix."""
    modules = dict(tts.model.named_modules())
    tokenizer = getattr(tts.model, "speech_tokenizer", None)
    if tokenizer is not None:
        modules.update({SPEECH_TOKENIZER_PREFIX + k if k else SPEECH_TOKENIZER_PREFIX[:-1]: m for k, m in tokenizer.model.named_modules()})
    return modules


def hookable_module_paths(tts: "Qwen3TTSModel") -> list[str]:
    """Raw module paths that run once in the teacher-forced pass with a `[batch, time, d]` output."""
    return [path for path in named_modules(tts) if path and _axis_of(path) is not None]


def resolve_layers(tts: "Qwen3TTSModel", names: Sequence[str]) -> list[LayerSite]:
    """Aliases or raw module paths -> sites; an unknown name is a `FeatureError` listing the valid aliases."""
    aliases = layer_aliases(tts)
    hookable = set(hookable_module_paths(tts))
    sites = []
    for name in dict.fromkeys(names):
        if name in aliases:
            sites.append(aliases[name])
        elif name in hookable:
            sites.append(LayerSite(name, name, _axis_of(name)))  # type: ignore[arg-type]
        else:
            raise FeatureError(
                f"unknown backbone layer {name!r}; valid aliases: {', '.join(aliases)} "
                "(or a module path listed by `stage1_5 layers --checkpoint ... --modules`)"
            )
    return sites


def get_module(tts: "Qwen3TTSModel", path: str) -> nn.Module:
    if path.startswith(SPEECH_TOKENIZER_PREFIX):
        return tts.model.speech_tokenizer.model.get_submodule(path[len(SPEECH_TOKENIZER_PREFIX):])
    return tts.model.get_submodule(path)


# ------------------------------------------------------------------------------- teacher forcing


@dataclass
class EncodedBatch:
    """What the model needs for one batch, before any embedding: token ids, codec codes, speaker vectors."""

    transcript_ids: list[torch.Tensor]  # each [n_tokens] long
    codes: list[torch.Tensor]  # each [n_frames, n_codebooks] long
    speaker: Optional[torch.Tensor]  # [batch, hidden] x-vectors; None = zeroed slot
    role_ids: torch.Tensor  # [3] "<|im_start|>assistant\n"
    language_id: Optional[int]


@dataclass
class TeacherForcedInputs:
    """The talker input and the position masks used for pooling (right-padded batch)."""

    inputs_embeds: torch.Tensor  # [batch, seq, hidden]
    attention_mask: torch.Tensor  # [batch, seq] long
    position_masks: dict[str, torch.Tensor]  # "audio" | "text" | "all" -> [batch, seq] bool
    text_mask: torch.Tensor  # [batch, 6 + max_tokens] bool: transcript columns of the text_projection call
    codes: torch.Tensor  # [batch, max_frames, n_codebooks] long, right-padded with 0
    frame_mask: torch.Tensor  # [batch, max_frames] bool


def language_id_for(tts: "Qwen3TTSModel", language: Optional[str]) -> Optional[int]:
    """Codec language tag id as the package picks it; None / 'auto' -> no tag ('nothink' layout)."""
    if language is None or language.lower() == "auto":
        return None
    table = tts.model.config.talker_config.codec_language_id or {}
    if language.lower() not in table:
        raise FeatureError(f"sources.backbone.language: {language!r} is not supported by this checkpoint; valid: auto, {', '.join(sorted(table))}")
    return int(table[language.lower()])


def encode_utterances(
    tts: "Qwen3TTSModel",
    wavs: Sequence[np.ndarray],
    texts: Sequence[str],
    *,
    speaker_slot: SpeakerSlot = "xvector",
    language: Optional[str] = None,
) -> EncodedBatch:
    """Tokenise transcripts as the package does for a voice-clone reference, encode 24 kHz audio to
    codes with the speech tokenizer (one padded batch), and take x-vectors from the speaker encoder
    (one utterance at a time, as the package does: its attentive pooling sees the whole waveform)."""
    model = tts.model
    if model.speech_tokenizer is None:
        raise FeatureError("this Qwen3-TTS checkpoint has no speech tokenizer (speech_tokenizer/ folder)")
    role = tts._tokenize_texts([tts._build_assistant_text("")])[0][0, :3].cpu()
    transcript_ids = [tts._tokenize_texts([tts._build_ref_text(t)])[0][0, 3:-2].cpu() for t in texts]
    # Zero-pad to whole codec frames: the frame count is the same (ceil), and the last frame's codes
    # no longer depend on how much padding the other utterances of the batch bring.
    hop = model.speech_tokenizer.get_encode_downsample_rate()
    framed = [np.pad(w, (0, -len(w) % hop)) for w in wavs]
    codes = [c.long().cpu() for c in model.speech_tokenizer.encode(framed, sr=SAMPLE_RATE).audio_codes]
    speaker = None
    if speaker_slot == "xvector":
        if model.speaker_encoder is None:
            raise FeatureError(
                f"sources.backbone.speaker_slot: 'xvector' needs a Base checkpoint with a speaker encoder "
                f"(this one is {model.tts_model_type!r}); use speaker_slot: zero"
            )
        speaker = torch.stack([model.extract_speaker_embedding(audio=w, sr=SAMPLE_RATE) for w in wavs])
    elif speaker_slot != "zero":
        raise FeatureError(f"sources.backbone.speaker_slot: {speaker_slot!r}; valid: xvector, zero")
    return EncodedBatch(transcript_ids, codes, speaker, role, language_id_for(tts, language))


def build_teacher_forced_inputs(model: nn.Module, batch: EncodedBatch) -> TeacherForcedInputs:
    """Lay out the voice-clone prefill (non-streaming, empty target text) for a batch, right-padded.

    `text_projection` and the codec-0 embedding each run ONCE for the whole batch (hooks on them
    see one call): row layout of the text call = [tts_bos, tts_eos, tts_pad, role x3, transcript].
    """
    talker, cfg, tcfg = model.talker, model.config, model.config.talker_config
    device = talker.device
    n = len(batch.transcript_ids)
    n_tok = [int(t.numel()) for t in batch.transcript_ids]
    n_frames = [int(c.shape[0]) for c in batch.codes]
    max_tok, max_frames = max(n_tok), max(n_frames)

    specials = torch.tensor([cfg.tts_bos_token_id, cfg.tts_eos_token_id, cfg.tts_pad_token_id], dtype=torch.long)
    text_ids = torch.full((n, 6 + max_tok), int(cfg.tts_pad_token_id), dtype=torch.long)
    text_ids[:, :3] = specials
    text_ids[:, 3:6] = batch.role_ids
    text_mask = torch.zeros(n, 6 + max_tok, dtype=torch.bool)
    for i, ids in enumerate(batch.transcript_ids):
        text_ids[i, 6 : 6 + n_tok[i]] = ids
        text_mask[i, 6 : 6 + n_tok[i]] = True
    text_h = talker.text_projection(talker.get_text_embeddings()(text_ids.to(device)))  # [n, 6+max_tok, H]
    tts_bos, tts_eos, tts_pad = text_h[:, 0:1], text_h[:, 1:2], text_h[:, 2:3]

    if batch.language_id is None:
        control = [tcfg.codec_nothink_id, tcfg.codec_think_bos_id, tcfg.codec_think_eos_id]
    else:
        control = [tcfg.codec_think_id, tcfg.codec_think_bos_id, batch.language_id, tcfg.codec_think_eos_id]
    n_ctrl = len(control)
    codes = torch.zeros(n, max_frames, batch.codes[0].shape[1], dtype=torch.long)
    frame_mask = torch.zeros(n, max_frames, dtype=torch.bool)
    for i, c in enumerate(batch.codes):
        codes[i, : n_frames[i]] = c
        frame_mask[i, : n_frames[i]] = True
    codes = codes.to(device)
    codec_ids = torch.cat(
        [torch.tensor([control + [tcfg.codec_pad_id, tcfg.codec_bos_id]] * n, dtype=torch.long, device=device), codes[:, :, 0]], dim=1
    )
    codec_h = talker.get_input_embeddings()(codec_ids)  # [n, n_ctrl + 2 + max_frames, H]
    frames = codec_h[:, n_ctrl + 2 :]
    for k, emb in enumerate(talker.code_predictor.get_input_embeddings()):
        frames = frames + emb(codes[:, :, k + 1])
    if batch.speaker is None:
        slot = torch.zeros(n, 1, codec_h.shape[-1], dtype=codec_h.dtype, device=device)
    else:
        slot = batch.speaker.to(device=device, dtype=codec_h.dtype).unsqueeze(1)
    # codec track of the control block: control tokens, speaker slot, codec_pad (codec_bos is placed later)
    control_codec = torch.cat([codec_h[:, :n_ctrl], slot, codec_h[:, n_ctrl : n_ctrl + 1]], dim=1)
    control_text = torch.cat([tts_pad.expand(-1, n_ctrl + 1, -1), tts_bos], dim=1)
    prefix = torch.cat([text_h[:, 3:6], control_text + control_codec], dim=1)  # [n, 3 + n_ctrl + 2, H]
    codec_pad, codec_bos = codec_h[:, n_ctrl : n_ctrl + 1], codec_h[:, n_ctrl + 1 : n_ctrl + 2]

    rows, text_pos, audio_pos = [], [], []
    for i in range(n):
        transcript = torch.cat([text_h[i : i + 1, 6 : 6 + n_tok[i]], tts_eos[i : i + 1]], dim=1) + codec_pad[i : i + 1]
        audio = torch.cat([codec_bos[i : i + 1], frames[i : i + 1, : n_frames[i]]], dim=1) + tts_pad[i : i + 1]
        rows.append(torch.cat([prefix[i : i + 1], transcript, audio], dim=1)[0])
        start = prefix.shape[1]
        text_pos.append((start, start + n_tok[i]))
        audio_pos.append((start + n_tok[i] + 2, start + n_tok[i] + 2 + n_frames[i]))
    inputs_embeds = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    seq = inputs_embeds.shape[1]
    idx = torch.arange(seq)
    lengths = torch.tensor([r.shape[0] for r in rows])
    masks = {
        "all": idx[None, :] < lengths[:, None],
        "text": torch.stack([(idx >= a) & (idx < b) for a, b in text_pos]),
        "audio": torch.stack([(idx >= a) & (idx < b) for a, b in audio_pos]),
    }
    return TeacherForcedInputs(
        inputs_embeds=inputs_embeds,
        attention_mask=masks["all"].long().to(device),
        position_masks=masks,
        text_mask=text_mask,
        codes=codes,
        frame_mask=frame_mask,
    )


def codec_pre_transformer(tokenizer_model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """The speech-tokenizer decoder up to (and including) `pre_transformer`, as its `forward` runs it,
    without the vocoder: codes `[batch, frames, n_codebooks]` -> `[batch, frames, latent]`.

    Right padding is harmless: the causal conv and causal attention never look ahead.
    """
    decoder = tokenizer_model.decoder
    hidden = decoder.quantizer.decode(codes.transpose(1, 2))
    hidden = decoder.pre_conv(hidden).transpose(1, 2)
    return decoder.pre_transformer(inputs_embeds=hidden).last_hidden_state


def teacher_forced_pass(tts: "Qwen3TTSModel", batch: EncodedBatch, *, run_talker: bool = True, run_codec: bool = True) -> TeacherForcedInputs:
    """Build the inputs and run the talker (every block, once) and, if asked, the codec decoder's
    pre-transformer. Call it inside `attached_hooks` to capture layers; returns the pooling masks."""
    inputs = build_teacher_forced_inputs(tts.model, batch)
    if run_talker:
        tts.model.talker(inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask, use_cache=False)
    if run_codec:
        tokenizer_model = tts.model.speech_tokenizer.model
        codec_pre_transformer(tokenizer_model, inputs.codes.to(tokenizer_model.device))
    return inputs


# -------------------------------------------------------------------------------------- loading


def load_qwen3_tts(
    checkpoint: str,
    *,
    dtype: torch.dtype,
    attn_implementation: str,
    device: torch.device,
    seed: int = 0,
) -> "Qwen3TTSModel":
    """Load a checkpoint by hub name or local folder ('tiny-random' builds the tiny model), in eval
    mode on `device`, with the speech tokenizer moved there too. Unknown / unreachable -> FeatureError."""
    from stage1_5.config import TINY_RANDOM

    if checkpoint == TINY_RANDOM:
        tts = build_tiny_qwen3_tts(seed, attn_implementation=attn_implementation)
        tts.model.to(dtype=dtype)
        return place(tts, device)
    path = Path(checkpoint).expanduser()
    if checkpoint.startswith((".", "/", "~")) and not path.is_dir():
        raise FeatureError(f"sources.backbone.checkpoint: local folder {checkpoint!r} not found")
    Qwen3TTSModel = _import_qwen_tts().Qwen3TTSModel
    try:
        tts = Qwen3TTSModel.from_pretrained(str(path) if path.is_dir() else checkpoint, dtype=dtype, attn_implementation=attn_implementation)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if path.is_dir():
            raise FeatureError(f"sources.backbone.checkpoint: {checkpoint!r} is not a loadable Qwen3-TTS checkpoint folder: {reason}") from None
        raise FeatureError(
            f"sources.backbone.checkpoint: {checkpoint!r} is not a local folder and cannot be downloaded here "
            f"({reason}); give a local folder holding the checkpoint, or 'tiny-random'"
        ) from None
    return place(tts, device)


def place(tts: "Qwen3TTSModel", device: torch.device) -> "Qwen3TTSModel":
    """Move the model AND its speech tokenizer (not a registered submodule) to `device`, eval mode.

    The speech tokenizer stays float32 whatever the model dtype: its codes are an argmin over
    codebooks, and bf16 flips some of them, which would make features depend on the dtype.
    """
    tts.model.to(device).eval()
    tokenizer = tts.model.speech_tokenizer
    tokenizer.model.to(device=device, dtype=torch.float32).eval()
    tokenizer.device = device
    tts.device = device
    return tts


# ------------------------------------------------------------------------------ tiny random model


def tiny_config_dicts(
    *,
    hidden_size: int = 64,
    num_layers: int = TINY_TALKER_LAYERS,
    intermediate_size: int = 128,
    num_heads: int = 4,
    head_dim: int = 16,
    text_vocab_size: int = 320,
    special_ids: Optional[dict[str, int]] = None,
) -> dict:
    """Config dicts of a randomly initialised Qwen3-TTS Base with the real layout (codec ids, 16
    codebooks, interleaved MRoPE, 12.5 Hz tokenizer) at small widths. Sizes are parameters so the
    benchmark can build bigger ones (and the real 1.7B talker shape)."""
    special_ids = special_ids or {}
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # sums to head_dim/2, like [24, 20, 20] for 128
    talker = dict(
        vocab_size=3072, hidden_size=hidden_size, intermediate_size=intermediate_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=max(1, num_heads // 2), head_dim=head_dim,
        text_vocab_size=text_vocab_size, text_hidden_size=hidden_size // 2 if hidden_size < 2048 else 2048,
        num_code_groups=16, rope_theta=1000000.0,
        rope_scaling=dict(rope_type="default", mrope_section=mrope, interleaved=True),
        codec_pad_id=2148, codec_bos_id=2149, codec_eos_token_id=2150, codec_think_id=2154, codec_nothink_id=2155,
        codec_think_bos_id=2156, codec_think_eos_id=2157, codec_language_id={"english": 2050, "chinese": 2055},
        spk_id={}, spk_is_dialect={},
        code_predictor_config=dict(
            vocab_size=2048, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, num_code_groups=16,
        ),
    )
    speaker = dict(
        mel_dim=128, enc_dim=hidden_size, enc_channels=[32, 32, 32, 32, 96], enc_kernel_sizes=[5, 3, 3, 3, 1],
        enc_dilations=[1, 2, 3, 4, 1], enc_attention_channels=16, enc_res2net_scale=4, enc_se_channels=16, sample_rate=SAMPLE_RATE,
    )
    model = dict(
        talker_config=talker, speaker_encoder_config=speaker, tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size="tiny", tts_model_type="base", **special_ids,
    )
    tokenizer = dict(
        encoder_config=dict(
            hidden_size=32, num_filters=4, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
            intermediate_size=64, codebook_size=2048, codebook_dim=16, vector_quantization_hidden_dimension=16,
            num_quantizers=16, num_semantic_quantizers=1, upsampling_ratios=[8, 6, 5, 4], frame_rate=12.5,
            sampling_rate=SAMPLE_RATE, upsample_groups=32,
        ),
        decoder_config=dict(
            codebook_size=2048, codebook_dim=16, hidden_size=32, latent_dim=32, num_attention_heads=2, num_key_value_heads=2,
            head_dim=16, intermediate_size=64, num_hidden_layers=2, num_quantizers=16, upsample_rates=[8, 5, 4, 3],
            upsampling_ratios=[2, 2], decoder_dim=32, sliding_window=72,
        ),
        encoder_valid_num_quantizers=16, input_sample_rate=SAMPLE_RATE, output_sample_rate=SAMPLE_RATE,
        decode_upsample_rate=1920, encode_downsample_rate=1920,
    )
    return {"model": model, "speech_tokenizer": tokenizer}


def _tiny_text_tokenizer():
    """A byte-level Qwen2 tokenizer with the chat / TTS special tokens (the real one needs the hub).
    'assistant' is one token so the package's role slicing (`input_id[:, :3]`) holds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tok = Qwen2TokenizerFast(tokenizer_object=backend, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>"]})
    tok.add_tokens(["assistant"])
    return tok


def _randomise_codebooks(tokenizer_model: nn.Module, generator: torch.Generator) -> None:
    """Codebooks start as zeros (every code would be 0): give them random centroids."""
    for name, buf in list(tokenizer_model.named_buffers()) + list(tokenizer_model.named_parameters()):
        if name.endswith("embed_sum") or name.endswith("embedding_sum"):
            with torch.no_grad():
                buf.copy_(torch.randn(buf.shape, generator=generator) * 0.5)


def build_tiny_qwen3_tts(seed: int = 0, *, attn_implementation: str = "sdpa", **sizes) -> "Qwen3TTSModel":
    """A randomly initialised Qwen3-TTS Base (`Qwen3TTSModel` wrapper: model, processor, speech
    tokenizer) built from config dicts, offline, deterministic in `seed`. fp32, CPU, eval mode."""
    _import_qwen_tts()
    from qwen_tts import Qwen3TTSModel
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer
    from transformers import EncodecFeatureExtractor

    text_tok = _tiny_text_tokenizer()
    ids = text_tok.convert_tokens_to_ids
    special = dict(
        im_start_token_id=ids("<|im_start|>"), im_end_token_id=ids("<|im_end|>"), tts_pad_token_id=ids("<tts_pad>"),
        tts_bos_token_id=ids("<tts_text_bos>"), tts_eos_token_id=ids("<tts_text_eod>"),
    )
    dicts = tiny_config_dicts(special_ids=special, **sizes)
    if len(text_tok) > dicts["model"]["talker_config"]["text_vocab_size"]:
        raise FeatureError("tiny text tokenizer is larger than text_vocab_size")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # initialisers draw from the global RNG: seed a fork of it
        torch.manual_seed(seed)
        config = Qwen3TTSConfig(**dicts["model"])
        config._attn_implementation = attn_implementation
        model = Qwen3TTSForConditionalGeneration(config)
        tok_model = Qwen3TTSTokenizerV2Model(Qwen3TTSTokenizerV2Config(**dicts["speech_tokenizer"]))
    _randomise_codebooks(tok_model, generator)
    speech_tokenizer = Qwen3TTSTokenizer()
    speech_tokenizer.model = tok_model.eval()
    speech_tokenizer.config = tok_model.config
    speech_tokenizer.feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    speech_tokenizer.device = torch.device("cpu")
    model.load_speech_tokenizer(speech_tokenizer)
    model.load_generate_config({"do_sample": False, "max_new_tokens": 8})
    return Qwen3TTSModel(model.eval(), Qwen3TTSProcessor(tokenizer=text_tok), generate_defaults=model.generate_config)


def save_tiny_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """Write the tiny model as a local checkpoint folder that `Qwen3TTSModel.from_pretrained(dir)`
    (the path that loads "Qwen/Qwen3-TTS-12Hz-1.7B-Base") reads offline.

    Layout as released: model + processor at the top, `speech_tokenizer/` beside it, and
    `generation_config.json`. `save_pretrained` writes `speaker_encoder_config.model_type`, which
    the config class rejects on reload, so it is dropped.
    """
    directory = Path(directory)
    tts = build_tiny_qwen3_tts(seed)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tts.model.save_pretrained(tmp)
    tts.processor.save_pretrained(tmp)
    config_path = tmp / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.get("speaker_encoder_config", {}).pop("model_type", None)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer = tts.model.speech_tokenizer
    tokenizer.model.save_pretrained(tmp / "speech_tokenizer")
    tokenizer.feature_extractor.save_pretrained(tmp / "speech_tokenizer")
    (tmp / "generation_config.json").write_text(json.dumps(tts.model.generate_config), encoding="utf-8")
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory

