"""The Qwen3-TTS family: config reading, layer aliases, loading and teacher-forced inputs (random models: `synthetic.py`).

The talker is one decoder-only transformer over a dual-track sequence (text-track embedding +
codec-track embedding per position). We probe it by teacher forcing: the inputs are laid out
exactly as the package's own voice-clone prefill with `non_streaming_mode=True` and an empty
target text, i.e. the utterance is the (transcript, audio) reference:

    role (3)  | codec control (think/lang, speaker slot, pad) over tts_pad.. tts_bos
              | transcript tokens + tts_eos over codec_pad | codec_bos + tts_pad | one position per frame

and ONE `talker(inputs_embeds=..., attention_mask=..., use_cache=False)` call runs every block.
Nothing is generated. The layout follows qwen-tts's own prefill (`Qwen3TTSForConditionalGeneration.generate`);
`tests/test_backbone_qwen3_tts.py` checks it against the package's voice-clone prefill on the tiny random model.

The speech tokenizer is a plain attribute of the model (not a registered submodule), so its modules
are addressed under the `speech_tokenizer.model.` prefix and moved to the device explicitly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from stage1_5.backbone.families.qwen_tts_package import SAMPLE_RATE, import_qwen_tts
from stage1_5.backbone.family import BackboneFamily, CheckpointShape, LayerSite, block_alias, truncated_blocks
from stage1_5.backbone.runtime import OPTION
from stage1_5.backbone.speaker import speaker_embeddings
from stage1_5.errors import FeatureError

if TYPE_CHECKING:  # qwen_tts imports take seconds and print a banner: import them lazily
    from qwen_tts import Qwen3TTSModel

    from stage1_5.backbone.checkpoint import CheckpointInfo
    from stage1_5.backbone.runtime import BackboneRuntime
    from stage1_5.config import BackboneConfig

SPEECH_TOKENIZER_PREFIX = "speech_tokenizer.model."
MODEL_TYPES = {"base": "Base", "custom_voice": "CustomVoice", "voice_design": "VoiceDesign"}

Axis = Literal["talker", "text", "frames"]
SpeakerSlot = Literal["xvector", "zero"]


# ----------------------------------------------------------------------------------------- layers

TALKER_BLOCKS = "talker.model.layers."


def alias_sites(n_layers: int) -> dict[str, LayerSite]:
    """Friendly names -> sites for a talker of `n_layers` blocks: text_encoder_out (axis "text": the
    transcript tokens through `text_projection`, context-free), decoder_block_NN (axis "talker": the
    talker sequence, pooled over `positions`), pre_vocoder (axis "frames": speech-tokenizer decoder
    frames, 12.5 Hz). Needs only the checkpoint's config, not its weights."""
    sites = [LayerSite("text_encoder_out", "talker.text_projection", "text", module_classes=("Qwen3TTSTalkerResizeMLP",))]
    sites += [LayerSite(block_alias(i), f"{TALKER_BLOCKS}{i}", "talker", i, module_classes=("Qwen3TTSTalkerDecoderLayer",)) for i in range(n_layers)]
    pre_transformer = SPEECH_TOKENIZER_PREFIX + "decoder.pre_transformer"
    sites.append(LayerSite("pre_vocoder", pre_transformer, "frames", module_classes=("Qwen3TTSTokenizerV2DecoderTransformerModel",)))
    return {s.name: s for s in sites}


def layer_aliases(tts: "Qwen3TTSModel") -> dict[str, LayerSite]:
    """The aliases of a loaded model (see `alias_sites`)."""
    return alias_sites(tts.model.config.talker_config.num_hidden_layers)


def _axis_of(path: str) -> Optional[Axis]:
    """The time axis of a raw module path's output, or None when the module is outside the pass
    or its output is not `[batch, time, features]` on a known axis."""
    if path.endswith(("rotary_emb", "q_norm", "k_norm")) or ".rotary_emb." in path:  # not [batch, time, d]
        return None
    if path == "talker.text_projection" or path.startswith("talker.text_projection.") or path == "talker.model.text_embedding":
        return "text"
    if path.startswith(TALKER_BLOCKS) or path in ("talker.model.norm", "talker.codec_head"):
        return "talker"
    pre_transformer = SPEECH_TOKENIZER_PREFIX + "decoder.pre_transformer"
    if path == pre_transformer or path.startswith(pre_transformer + "."):
        return "frames"
    return None


_BLOCK_PATH = re.compile(r"^talker\.model\.layers\.(\d+)(\.|$)")


def _block_of(path: str) -> Optional[int]:
    match = _BLOCK_PATH.match(path)
    return int(match.group(1)) if match else None


def named_modules(tts: "Qwen3TTSModel") -> dict[str, nn.Module]:
    """Every module by dotted path: the model's own, plus the speech tokenizer's under its prefix."""
    modules = dict(tts.model.named_modules())
    tokenizer = getattr(tts.model, "speech_tokenizer", None)
    if tokenizer is not None:
        modules.update({SPEECH_TOKENIZER_PREFIX + k if k else SPEECH_TOKENIZER_PREFIX[:-1]: m for k, m in tokenizer.model.named_modules()})
    return modules


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


def language_tag_id(table: Mapping[str, int], language: Optional[str]) -> Optional[int]:
    """Codec language tag id from a checkpoint's `codec_language_id` table, as the package picks it;
    None / 'auto' -> no tag ('nothink' layout). A language the table lacks is a FeatureError."""
    if language is None or language.lower() == "auto":
        return None
    if language.lower() not in table:
        raise FeatureError(f"sources.backbone.language: {language!r} is not supported by this checkpoint; valid: auto, {', '.join(sorted(table))}")
    return int(table[language.lower()])


def language_id_for(tts: "Qwen3TTSModel", language: Optional[str]) -> Optional[int]:
    """`language_tag_id` of a loaded model."""
    return language_tag_id(tts.model.config.talker_config.codec_language_id or {}, language)


def encode_utterances(
    tts: "Qwen3TTSModel",
    wavs: Sequence[np.ndarray],
    texts: Sequence[str],
    *,
    speaker_slot: SpeakerSlot = "xvector",
    language: Optional[str] = None,
    batch_speaker: bool = True,
) -> EncodedBatch:
    """Tokenise transcripts as the package does for a voice-clone reference, encode 24 kHz audio to
    codes with the speech tokenizer (one padded batch), and take x-vectors from the speaker encoder:
    one padded batch that keeps each utterance's own view (`stage1_5.backbone.speaker`), or with
    `batch_speaker=False` one utterance at a time through the package (the reference)."""
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
        if batch_speaker:
            speaker = speaker_embeddings(model, wavs, SAMPLE_RATE)
        else:
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


def teacher_forced_pass(
    tts: "Qwen3TTSModel",
    batch: EncodedBatch,
    *,
    run_talker: bool = True,
    run_codec: bool = True,
    n_blocks: Optional[int] = None,
) -> TeacherForcedInputs:
    """Build the inputs and run the talker once (its first `n_blocks` blocks, see
    `BackboneFamily.blocks_needed`; None: every block) and, if asked, the codec decoder's pre-transformer. Call it inside
    `attached_hooks` to capture layers; returns the pooling masks."""
    inputs = build_teacher_forced_inputs(tts.model, batch)
    if run_talker and n_blocks != 0:
        with truncated_blocks(tts.model.talker.model, "layers", n_blocks):
            tts.model.talker(inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask, use_cache=False)
    if run_codec:
        tokenizer_model = tts.model.speech_tokenizer.model
        codec_pre_transformer(tokenizer_model, inputs.codes.to(tokenizer_model.device))
    return inputs


# ---------------------------------------------------------------------------------------- loading


def _torch_dtype(name: str) -> torch.dtype:
    from stage1_5.torch_utils import DTYPES

    return DTYPES[name]


def _reload_speech_tokenizer(tts: "Qwen3TTSModel", location: str) -> None:
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer
    from transformers.utils.hub import cached_file

    config = cached_file(location, "speech_tokenizer/config.json")
    tts.model.load_speech_tokenizer(Qwen3TTSTokenizer.from_pretrained(os.path.dirname(config), dtype=torch.float32))


def place(tts: "Qwen3TTSModel", device: torch.device) -> "Qwen3TTSModel":
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


# ----------------------------------------------------------------------------------------- family


class Qwen3TTSFamily(BackboneFamily):
    """Qwen3-TTS 12 Hz (Base / CustomVoice / VoiceDesign): the handle is a `qwen_tts.Qwen3TTSModel`."""

    name = "qwen3_tts"
    title = "Qwen3-TTS"
    model_types = ("qwen3_tts",)
    sample_rate = SAMPLE_RATE
    module_prefixes = ("talker.", SPEECH_TOKENIZER_PREFIX)
    block_axis = "talker"

    def describe(self, config: Mapping[str, Any]) -> CheckpointShape:
        if config.get("model_type", "qwen3_tts") != "qwen3_tts" or "talker_config" not in config:
            raise FeatureError(
                f"its config.json has model_type {config.get('model_type')!r}, not a Qwen3-TTS checkpoint; "
                "give a Qwen3-TTS 12 Hz checkpoint such as Qwen/Qwen3-TTS-12Hz-1.7B-Base"
            )
        talker = config["talker_config"]
        model_type = str(config.get("tts_model_type", "base"))
        return CheckpointShape(
            kind=MODEL_TYPES.get(model_type, model_type),
            n_layers=int(talker["num_hidden_layers"]),
            hidden_size=int(talker["hidden_size"]),
            language_ids={str(k).lower(): int(v) for k, v in (talker.get("codec_language_id") or {}).items()},
            speakers=tuple(talker.get("spk_id") or {}),
            speaker_encoder=model_type == "base",
        )

    def tiny_config(self) -> dict[str, Any]:
        from stage1_5.backbone.synthetic import tiny_config_dicts

        return tiny_config_dicts()["model"]

    def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
        return alias_sites(n_layers)

    def skeleton(self, config: Mapping[str, Any]) -> Any:
        """The model of this config.json and a 12 Hz speech tokenizer (the released layout, reduced
        depth: only classes and structure matter) on the meta device, as a handle `named_modules` reads;
        None when the config does not build (the classes are then checked on the loaded model)."""
        from types import SimpleNamespace

        from stage1_5.backbone.released import QUICK, released_speech_tokenizer_config

        import_qwen_tts()
        from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
        from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration

        try:
            with torch.device("meta"):
                model = Qwen3TTSForConditionalGeneration(Qwen3TTSConfig(**config))
                tokenizer = Qwen3TTSTokenizerV2Model(Qwen3TTSTokenizerV2Config(**released_speech_tokenizer_config(QUICK)))
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        model.speech_tokenizer = SimpleNamespace(model=tokenizer)
        return SimpleNamespace(model=model)

    def check_options(self, cfg: "BackboneConfig", shape: CheckpointShape, option: str) -> None:
        if cfg.speaker_slot == "xvector" and not shape.speaker_encoder:
            raise FeatureError(
                f"{option}.speaker_slot: 'xvector' needs a Base checkpoint (only Base has a speaker encoder); "
                f"{cfg.checkpoint!r} is {shape.kind}; use speaker_slot: zero"
            )
        language_tag_id(shape.language_ids, cfg.language)

    def load(self, info: "CheckpointInfo", runtime: "BackboneRuntime", *, seed: int) -> "Qwen3TTSModel":
        """Talker in the runtime's dtype, speech tokenizer in float32 ('tiny-random' builds the tiny model)."""
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

    def adopt(self, handle: "Qwen3TTSModel", device: torch.device) -> "Qwen3TTSModel":
        return place(handle, device)

    def torch_model(self, handle: "Qwen3TTSModel") -> nn.Module:
        return handle.model

    def n_layers(self, handle: "Qwen3TTSModel") -> int:
        return int(handle.model.config.talker_config.num_hidden_layers)

    def named_modules(self, handle: "Qwen3TTSModel") -> dict[str, nn.Module]:
        return named_modules(handle)

    def get_module(self, handle: "Qwen3TTSModel", path: str) -> nn.Module:
        return get_module(handle, path)

    def axis_of(self, path: str) -> Optional[str]:
        return _axis_of(path)

    def block_of(self, path: str) -> Optional[int]:
        return _block_of(path)

    def forward(
        self,
        handle: "Qwen3TTSModel",
        wavs: Sequence[np.ndarray],
        texts: Sequence[str],
        sites: Sequence[LayerSite],
        cfg: "BackboneConfig",
        *,
        n_blocks: Optional[int],
        batch_speaker: bool,
    ) -> dict[str, torch.Tensor]:
        """Positions pooled on the talker axis: `cfg.positions` ("audio": one per codec frame; the
        hidden state there has already seen that frame's codes, see docs/backbones.md)."""
        run_talker = any(s.axis == "talker" for s in sites)
        # only talker positions see the speaker slot: skip the x-vectors when no talker layer is asked for
        speaker_slot = cfg.speaker_slot if run_talker else "zero"
        encoded = encode_utterances(handle, wavs, texts, speaker_slot=speaker_slot, language=cfg.language, batch_speaker=batch_speaker)
        inputs = teacher_forced_pass(
            handle, encoded, run_talker=run_talker, run_codec=any(s.axis == "frames" for s in sites), n_blocks=n_blocks
        )
        return {"talker": inputs.position_masks[cfg.positions], "text": inputs.text_mask, "frames": inputs.frame_mask}
