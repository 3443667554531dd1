"""The CSM family (Sesame's Conversational Speech Model, `transformers.CsmForConditionalGeneration` + Mimi).

Same recipe as Qwen3-TTS: a Llama-style backbone over 12.5 Hz codec frames (each frame's 32 Mimi
codebooks embedded and summed into one position) plus a small depth decoder that predicts codebooks
1..31 of a frame from the backbone state before it. Teacher forcing is native: the inputs are laid
out as the model's own training sequence for one (transcript, audio) segment,

    <|begin_of_text|> [0] transcript <|end_of_text|> | one position per frame | audio_eos frame

(`CsmProcessor` with speaker 0; `CsmForConditionalGeneration._merge_input_ids_with_input_values`
fills the frame positions), and ONE `backbone_model(inputs_embeds=..., attention_mask=...)` call runs
every block. The depth decoder runs once per codec frame, as in training (`forward(labels=...)`):
position 0 holds the backbone's last hidden state before the frame, positions 1..31 codebooks
0..30 of the frame. Nothing is generated.

Layers (family-neutral names first):
- `text_encoder_out`: `embed_text_tokens` on the transcript tokens (context-free, axis "text");
- `decoder_block_NN`: `backbone_model.layers.NN` (axis "backbone": pooled over `positions`);
- `pre_vocoder`: Mimi's `decoder_transformer` over the frames' codes (axis "codec", 25 Hz);
- extras: `audio_embeddings` (`backbone_model.embed_tokens`: each frame's summed codebook
  embeddings, axis "frames"), `backbone_out` (the final norm), `depth_decoder_out` (the depth
  decoder's final norm, averaged over a frame's 32 positions, axis "frames").

The model's audio rate is 24 kHz; Mimi runs in float32 whatever the backbone dtype (its codes are an
argmin over codebooks). CSM-1B was trained on English: `trained_languages`. The released config
files are in `csm_configs/` (provenance in `csm_configs/SOURCES.md`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from stage1_5.backbone.family import BackboneFamily, CheckpointShape, LayerSite, block_alias, truncated_blocks
from stage1_5.backbone.runtime import OPTION, SPEECH_TOKENIZER_DTYPE
from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    from stage1_5.backbone.checkpoint import CheckpointInfo
    from stage1_5.backbone.runtime import BackboneRuntime
    from stage1_5.config import BackboneConfig

SAMPLE_RATE = 24000
SPEAKER = 0
"""The speaker id of the `[0]` prefix: every utterance is read as the same conversation speaker."""
BLOCKS = "backbone_model.layers."
DEPTH_OUT = "depth_decoder.model.norm"
RELEASED = {"sesame/csm-1b": "csm-1b.config.json"}
"""Released checkpoints whose config.json ships in `csm_configs/` (offline `stage1_5 layers`)."""

TINY_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|AUDIO|>", "<|audio_eos|>")
"""The tiny tokenizer's special tokens, ids 256..259 after the 256 byte tokens (the Llama-3 names)."""


@dataclass
class CsmHandle:
    """A loaded CSM: the model and its text tokenizer."""

    model: nn.Module  # CsmForConditionalGeneration
    tokenizer: Any  # transformers PreTrainedTokenizerFast


def released_config(name: str) -> dict[str, Any]:
    """The packaged config.json of a released checkpoint (`RELEASED`)."""
    text = (resources.files("stage1_5.backbone") / "csm_configs" / RELEASED[name]).read_text(encoding="utf-8")
    return json.loads(text)


def tiny_config() -> dict[str, Any]:
    """config.json of a randomly initialised CSM with the real layout (Mimi at 12.5 Hz, a depth
    decoder per frame) at small widths and 8 codebooks: builds in well under a second."""
    from transformers import CsmConfig, MimiConfig

    codebooks, codebook_size = 8, 64
    mimi = MimiConfig(
        hidden_size=32, num_filters=4, codebook_size=codebook_size, codebook_dim=16, vector_quantization_hidden_dimension=16,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=16, intermediate_size=64,
        num_quantizers=codebooks, upsample_groups=32,
    )  # fmt: skip
    vocab = codebook_size + 3  # codes, then codebook eos/pad as in 2048 + 3 = 2051
    config = CsmConfig(
        num_codebooks=codebooks, vocab_size=vocab, text_vocab_size=256 + len(TINY_SPECIALS), hidden_size=64,
        intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        bos_token_id=256, pad_token_id=258, audio_token_id=258, audio_eos_token_id=259,
        codebook_pad_token_id=vocab - 1, codebook_eos_token_id=0,
        depth_decoder_config=dict(
            num_codebooks=codebooks, backbone_hidden_size=64, vocab_size=vocab, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=codebooks + 1,
        ),
        codec_config=mimi.to_dict(),
    )  # fmt: skip
    out = config.to_dict()
    out["architectures"] = ["CsmForConditionalGeneration"]
    return out


def tiny_tokenizer():
    """An offline byte-level tokenizer (256 byte tokens, no merges, the Llama-3 special names) built
    with the `tokenizers` package: what 'tiny-random' reads transcripts with."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(TINY_SPECIALS))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=TINY_SPECIALS[0], eos_token=TINY_SPECIALS[1], pad_token=TINY_SPECIALS[2])


def csm_config(config: Mapping[str, Any]):
    """A `CsmConfig` from a config.json dict (its bookkeeping keys dropped)."""
    from transformers import CsmConfig

    return CsmConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type", "transformers_version")})


def build_tiny_csm(seed: int = 0, *, attn_implementation: str = "sdpa") -> CsmHandle:
    """The 'tiny-random' CSM: random weights of the real classes, seeded."""
    from transformers import CsmForConditionalGeneration

    config = csm_config(tiny_config())
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CsmForConditionalGeneration(config)
    return CsmHandle(model.eval(), tiny_tokenizer())


def save_tiny_checkpoint(folder, seed: int = 0) -> str:
    """Write the tiny CSM in the released layout (config.json, weights, tokenizer files) so that
    `CsmForConditionalGeneration.from_pretrained(folder)` and `AutoTokenizer` read it back."""
    handle = build_tiny_csm(seed)
    handle.model.save_pretrained(folder)
    handle.tokenizer.save_pretrained(folder)
    return str(folder)


def alias_sites(n_layers: int) -> dict[str, LayerSite]:
    """Aliases -> sites for a backbone of `n_layers` blocks, in network depth order."""
    sites = [
        LayerSite("text_encoder_out", "embed_text_tokens", "text", module_classes=("Embedding",)),
        LayerSite("audio_embeddings", "backbone_model.embed_tokens", "frames", module_classes=("CsmBackboneModelEmbeddings",)),
    ]
    sites += [LayerSite(block_alias(i), f"{BLOCKS}{i}", "backbone", i, module_classes=("CsmDecoderLayer",)) for i in range(n_layers)]
    sites += [
        LayerSite("backbone_out", "backbone_model.norm", "backbone", module_classes=("CsmRMSNorm",)),
        LayerSite("depth_decoder_out", DEPTH_OUT, "frames", module_classes=("CsmRMSNorm",)),
        LayerSite("pre_vocoder", "codec_model.decoder_transformer", "codec", module_classes=("MimiTransformerModel",)),
    ]
    return {s.name: s for s in sites}


def _axis_of(path: str) -> Optional[str]:
    if path.endswith(("rotary_emb", "act_fn")) or ".rotary_emb" in path:
        return None
    if path == "embed_text_tokens":
        return "text"
    if path == "backbone_model.embed_tokens":
        return "frames"
    if path.startswith(BLOCKS) or path == "backbone_model.norm":
        return "backbone"
    if path == DEPTH_OUT:
        return "frames"
    if path == "codec_model.decoder_transformer":
        return "codec"
    return None


def _block_of(path: str) -> Optional[int]:
    if not path.startswith(BLOCKS):
        return None
    return int(path[len(BLOCKS) :].split(".")[0])


@dataclass
class _Layout:
    """One right-padded teacher-forced batch."""

    inputs_embeds: torch.Tensor  # [batch, seq, hidden]
    masks: dict[str, torch.Tensor]  # "audio" | "text" | "all" -> [batch, seq] bool
    text_mask: torch.Tensor  # [batch, max_tokens + 2] transcript columns of the embed_text_tokens call
    codes: torch.Tensor  # [batch, max_frames + 1, n_codebooks] frames, then the eos frame, then padding
    frame_mask: torch.Tensor  # [batch, max_frames + 1]: the frames (not eos, not padding)
    frame_pos: list[torch.Tensor]  # per row: sequence positions of its frames


class CsmFamily(BackboneFamily):
    """CSM (`model_type: csm`): the handle is a `CsmHandle` (model + tokenizer)."""

    name = "csm"
    title = "CSM"
    model_types = ("csm",)
    sample_rate = SAMPLE_RATE
    trained_languages = ("en",)
    module_prefixes = ("backbone_model.", "embed_text_tokens", "depth_decoder.", "codec_model.")
    block_axis = "backbone"

    def describe(self, config: Mapping[str, Any]) -> CheckpointShape:
        if config.get("model_type") != "csm":
            raise FeatureError(f"its config.json has model_type {config.get('model_type')!r}, not 'csm'; give a CSM checkpoint such as sesame/csm-1b")
        return CheckpointShape(
            kind="CSM",
            n_layers=int(config.get("num_hidden_layers", 16)),
            hidden_size=int(config.get("hidden_size", 2048)),
            language_ids={},
            speakers=(),
            speaker_encoder=False,
        )

    def tiny_config(self) -> dict[str, Any]:
        return tiny_config()

    def released_config(self, name: str) -> Optional[dict[str, Any]]:
        return released_config(name) if name in RELEASED else None

    def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
        return alias_sites(n_layers)

    def skeleton(self, config: Mapping[str, Any]) -> CsmHandle:
        """`CsmForConditionalGeneration` of this config.json on the meta device (csm-1b: a fraction of a second)."""
        from transformers import CsmForConditionalGeneration

        with torch.device("meta"):
            return CsmHandle(CsmForConditionalGeneration(csm_config(config)), tokenizer=None)

    def check_options(self, cfg: "BackboneConfig", shape: CheckpointShape, option: str) -> None:
        """CSM has no speaker slot (the `[0]` prefix names the speaker; `speaker_slot` does not apply)
        and no language tag: `language` names the dataset's language, and one it was not trained on
        is reported (`language_note`), not refused."""

    def load(self, info: "CheckpointInfo", runtime: "BackboneRuntime", *, seed: int) -> CsmHandle:
        from stage1_5.torch_utils import DTYPES

        dtype, device = DTYPES[runtime.dtype], torch.device(runtime.device)
        if info.origin == "tiny-random":
            handle = build_tiny_csm(seed, attn_implementation=runtime.attn_implementation)
            handle.model.to(dtype=dtype)
            return self.adopt(handle, device)
        if info.origin == "packaged":
            raise FeatureError(f"{OPTION}.checkpoint: {info.name!r}: only its config ships with stage1_5; download the weights once online")
        from transformers import AutoTokenizer, CsmForConditionalGeneration

        try:
            model = CsmForConditionalGeneration.from_pretrained(info.location, dtype=dtype, attn_implementation=runtime.attn_implementation)
            tokenizer = AutoTokenizer.from_pretrained(info.location)
        except (OSError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise FeatureError(f"{OPTION}.checkpoint: {info.name!r} cannot be loaded as a CSM checkpoint: {reason}") from None
        return self.adopt(CsmHandle(model, tokenizer), device)

    def adopt(self, handle: CsmHandle, device: torch.device) -> CsmHandle:
        """Device and eval mode; Mimi in float32 (its codes are an argmin over codebooks)."""
        from stage1_5.torch_utils import DTYPES

        handle.model.to(device).eval()
        handle.model.codec_model.to(dtype=DTYPES[SPEECH_TOKENIZER_DTYPE])
        return handle

    def torch_model(self, handle: CsmHandle) -> nn.Module:
        return handle.model

    def n_layers(self, handle: CsmHandle) -> int:
        return int(handle.model.config.num_hidden_layers)

    def axis_of(self, path: str) -> Optional[str]:
        return _axis_of(path)

    def block_of(self, path: str) -> Optional[int]:
        return _block_of(path)

    def arrange(self, site: LayerSite, hidden: torch.Tensor, masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The depth decoder runs on `[frames, 32, d]`: average a frame's positions and put each frame
        back at its place in `[batch, max_frames + 1, d]` (zeros where the frame mask is False)."""
        if site.module_path != DEPTH_OUT:
            return hidden
        mask = masks["frames"]
        out = hidden.new_zeros(*mask.shape, hidden.shape[-1])
        out[mask.to(hidden.device)] = hidden.mean(dim=1)
        return out

    # ------------------------------------------------------------------------ teacher forcing

    def _codes(self, model: nn.Module, wavs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Mimi codes `[frames, n_codebooks]` per utterance, one utterance at a time (Mimi's encoder
        takes no padding mask, as in `CsmForConditionalGeneration`)."""
        codec = model.codec_model
        device = next(codec.parameters()).device
        out = []
        for wav in wavs:
            audio = torch.as_tensor(np.asarray(wav, dtype=np.float32), device=device)[None, None]
            out.append(codec.encode(audio, num_quantizers=model.config.num_codebooks).audio_codes[0].transpose(0, 1).long())
        return out

    def _layout(self, handle: CsmHandle, texts: Sequence[str], codes: list[torch.Tensor]) -> _Layout:
        model, tok, cfg = handle.model, handle.tokenizer, handle.model.config
        device = next(model.backbone_model.parameters()).device
        prefix = tok.encode(f"[{SPEAKER}]", add_special_tokens=False)
        transcripts = [tok.encode(t, add_special_tokens=False) for t in texts]
        n = len(texts)
        width = 2 + len(prefix) + max(len(t) for t in transcripts)
        text_ids = torch.full((n, width), int(cfg.pad_token_id), dtype=torch.long)
        text_mask = torch.zeros(n, width, dtype=torch.bool)
        n_text = []
        for i, ids in enumerate(transcripts):
            row = [int(cfg.bos_token_id), *prefix, *ids, int(tok.eos_token_id)]
            text_ids[i, : len(row)] = torch.tensor(row)
            text_mask[i, 1 + len(prefix) : 1 + len(prefix) + len(ids)] = True
            n_text.append(len(row))
        text_h = model.embed_text_tokens(text_ids.to(device))  # one call for the batch
        n_frames = [int(c.shape[0]) for c in codes]
        max_frames = max(n_frames)
        frames = torch.zeros(n, max_frames + 1, cfg.num_codebooks, dtype=torch.long)
        frame_mask = torch.zeros(n, max_frames + 1, dtype=torch.bool)
        for i, c in enumerate(codes):
            frames[i, : n_frames[i]] = c.cpu()
            frames[i, n_frames[i]] = int(cfg.codebook_eos_token_id)
            frame_mask[i, : n_frames[i]] = True
        frames = frames.to(device)
        audio_h = model.backbone_model.embed_tokens(frames)  # one call: frames and each row's eos frame
        rows, frame_pos, text_pos = [], [], []
        for i in range(n):
            rows.append(torch.cat([text_h[i, : n_text[i]], audio_h[i, : n_frames[i] + 1]], dim=0))
            frame_pos.append(torch.arange(n_text[i], n_text[i] + n_frames[i]))
            text_pos.append((1 + len(prefix), 1 + len(prefix) + len(transcripts[i])))
        inputs_embeds = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        idx = torch.arange(inputs_embeds.shape[1])
        lengths = torch.tensor([r.shape[0] for r in rows])
        masks = {
            "all": idx[None, :] < lengths[:, None],
            "text": torch.stack([(idx >= a) & (idx < b) for a, b in text_pos]),
            "audio": torch.stack([(idx >= p[0]) & (idx <= p[-1]) if len(p) else idx < 0 for p in frame_pos]),
        }
        return _Layout(inputs_embeds, masks, text_mask, frames, frame_mask, frame_pos)

    def forward(
        self,
        handle: CsmHandle,
        wavs: Sequence[np.ndarray],
        texts: Sequence[str],
        sites: Sequence[LayerSite],
        cfg: "BackboneConfig",
        *,
        n_blocks: Optional[int],
        batch_speaker: bool,
    ) -> dict[str, torch.Tensor]:
        """Positions pooled on the backbone axis: `cfg.positions` ("audio": one per codec frame, whose
        input is that frame's codes, so its state has already seen them; see docs/backbones.md)."""
        model = handle.model
        layout = self._layout(handle, texts, self._codes(model, wavs))
        depth = any(s.module_path.startswith("depth_decoder.") for s in sites)
        run_backbone = depth or any(s.axis == "backbone" for s in sites)
        if depth:
            n_blocks = None  # the depth decoder reads the last backbone state
        hidden = None
        if run_backbone and n_blocks != 0:
            attention = layout.masks["all"].long().to(layout.inputs_embeds.device)
            with truncated_blocks(model.backbone_model, "layers", n_blocks):
                hidden = model.backbone_model(inputs_embeds=layout.inputs_embeds, attention_mask=attention, use_cache=False)[0]
        if depth:
            self._depth_pass(model, hidden, layout)
        if any(s.axis == "codec" for s in sites):
            codec_mask = self._codec_pass(model, layout)
        else:
            codec_mask = layout.frame_mask.repeat_interleave(2, dim=1)
        return {"backbone": layout.masks[cfg.positions], "text": layout.text_mask, "frames": layout.frame_mask, "codec": codec_mask}

    @staticmethod
    def _depth_pass(model: nn.Module, hidden: torch.Tensor, layout: _Layout) -> None:
        """The depth decoder over every frame, as in training: position 0 = the backbone's last
        hidden state at the position before the frame, positions 1.. = the frame's codebooks 0..K-2."""
        rows = [(i, pos) for i, positions in enumerate(layout.frame_pos) for pos in positions.tolist()]
        batch_idx = torch.tensor([i for i, _ in rows])
        seq_idx = torch.tensor([p for _, p in rows])
        frame_codes = layout.codes[layout.frame_mask.to(layout.codes.device)]  # [frames, K], row order = rows
        ids = torch.nn.functional.pad(frame_codes[:, :-1], (1, 0), value=0)
        last = hidden[batch_idx.to(hidden.device), (seq_idx - 1).to(hidden.device)]
        model.depth_decoder.model(input_ids=ids, backbone_last_hidden_state=last, use_cache=False)

    @staticmethod
    def _codec_pass(model: nn.Module, layout: _Layout) -> torch.Tensor:
        """Mimi's decoder up to its transformer (no vocoder), on the frames' codes; returns the mask of
        its 25 Hz steps. Right padding is harmless: the upsampling and the attention are causal."""
        codec = model.codec_model
        device = next(codec.parameters()).device
        codes = layout.codes.masked_fill(~layout.frame_mask[..., None].to(layout.codes.device), 0).to(device)
        embeddings = codec.quantizer.decode(codes.transpose(1, 2))
        embeddings = codec.upsample(embeddings)
        codec.decoder_transformer(embeddings.transpose(1, 2), return_dict=True)
        return layout.frame_mask.repeat_interleave(embeddings.shape[-1] // layout.frame_mask.shape[1], dim=1)
