"""Randomly initialised Qwen3-TTS models of the real classes, built offline from config dicts.

`assemble_random_tts` turns a model config dict, a speech-tokenizer config dict and a text tokenizer
into a `Qwen3TTSModel` wrapper exactly as `Qwen3TTSModel.from_pretrained` would hand it back, and
`save_checkpoint` writes it in the released folder layout (model + processor at the top,
`speech_tokenizer/` beside it, `generation_config.json`) so that `from_pretrained(dir)` reads it
back. The tiny model (`build_tiny_qwen3_tts`, checkpoint 'tiny-random') keeps tests and the demo
fast; `released.py` builds the released configurations with the same two functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

import torch
from torch import nn

from stage1_5.backbone.families.qwen_tts_package import SAMPLE_RATE, import_qwen_tts
from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    from qwen_tts import Qwen3TTSModel

TINY_TALKER_LAYERS = 4
"""The tiny model has talker blocks decoder_block_00..03."""

TINY_GENERATE_CONFIG = {"do_sample": False, "max_new_tokens": 8}


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


def tiny_text_tokenizer():
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


def special_token_ids(text_tokenizer) -> dict[str, int]:
    """The model config's text-token ids, looked up in `text_tokenizer`."""
    ids = text_tokenizer.convert_tokens_to_ids
    return dict(
        im_start_token_id=ids("<|im_start|>"), im_end_token_id=ids("<|im_end|>"), tts_pad_token_id=ids("<tts_pad>"),
        tts_bos_token_id=ids("<tts_text_bos>"), tts_eos_token_id=ids("<tts_text_eod>"),
    )


def _randomise_codebooks(tokenizer_model: nn.Module, generator: torch.Generator) -> None:
    """Codebooks start as zeros (every code would be 0): give them random centroids."""
    for name, buf in list(tokenizer_model.named_buffers()) + list(tokenizer_model.named_parameters()):
        if name.endswith("embed_sum") or name.endswith("embedding_sum"):
            with torch.no_grad():
                buf.copy_(torch.randn(buf.shape, generator=generator).to(buf.device) * 0.5)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def assemble_random_tts(
    model_config: Mapping[str, Any],
    tokenizer_config: Mapping[str, Any],
    text_tokenizer,
    *,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
    generate_config: Optional[Mapping[str, Any]] = None,
    speech_tokenizer: Optional[Any] = None,
    init_once: bool = False,
) -> "Qwen3TTSModel":
    """A randomly initialised `Qwen3TTSModel` (model, processor, speech tokenizer), deterministic in
    `seed`, in eval mode. The model is built directly in `dtype` on `device` (a real-size model is
    initialised on the GPU in seconds); the speech tokenizer is always float32. `speech_tokenizer`:
    reuse one already built (variants of one release share it) instead of building another.
    `init_once`: skip the layers' own initialisation, which transformers' `init_weights` overwrites
    anyway (half the build time; a different random draw for the same seed)."""
    import_qwen_tts()
    from qwen_tts import Qwen3TTSModel
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer
    from transformers import EncodecFeatureExtractor
    from transformers.modeling_utils import no_init_weights

    text_vocab = model_config["talker_config"]["text_vocab_size"]
    if len(text_tokenizer) > text_vocab:
        raise FeatureError(f"text tokenizer has {len(text_tokenizer)} tokens, more than text_vocab_size {text_vocab}")
    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), device:  # initialisers draw from the global RNG: seed a fork of it
        torch.manual_seed(seed)
        config = Qwen3TTSConfig(**model_config)
        config._attn_implementation = attn_implementation
        with _default_dtype(dtype), no_init_weights() if init_once else contextlib.nullcontext():
            model = Qwen3TTSForConditionalGeneration(config)
        if init_once:
            model.init_weights()
        if speech_tokenizer is None:
            tok_model = Qwen3TTSTokenizerV2Model(Qwen3TTSTokenizerV2Config(**tokenizer_config))
    if speech_tokenizer is None:
        _randomise_codebooks(tok_model, generator)
        speech_tokenizer = Qwen3TTSTokenizer()
        speech_tokenizer.model = tok_model.eval()
        speech_tokenizer.config = tok_model.config
        speech_tokenizer.feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
        speech_tokenizer.device = device
    model.load_speech_tokenizer(speech_tokenizer)
    model.load_generate_config(dict(generate_config or TINY_GENERATE_CONFIG))
    tts = Qwen3TTSModel(model.eval(), Qwen3TTSProcessor(tokenizer=text_tokenizer), generate_defaults=model.generate_config)
    tts.device = device
    return tts


def build_tiny_qwen3_tts(seed: int = 0, *, attn_implementation: str = "sdpa", **sizes) -> "Qwen3TTSModel":
    """A randomly initialised Qwen3-TTS Base built from `tiny_config_dicts`, offline, deterministic in
    `seed`. fp32, CPU, eval mode."""
    text_tok = tiny_text_tokenizer()
    dicts = tiny_config_dicts(special_ids=special_token_ids(text_tok), **sizes)
    return assemble_random_tts(dicts["model"], dicts["speech_tokenizer"], text_tok, seed=seed, attn_implementation=attn_implementation)


def save_checkpoint(
    tts: "Qwen3TTSModel",
    directory: str | Path,
    *,
    config: Optional[Mapping[str, Any]] = None,
    speech_tokenizer_config: Optional[Mapping[str, Any]] = None,
    preprocessor_config: Optional[Mapping[str, Any]] = None,
    speech_tokenizer_dir: Optional[Path] = None,
    write_processor: bool = True,
) -> Path:
    """Write `tts` as a local checkpoint folder that `Qwen3TTSModel.from_pretrained(dir)` reads
    offline, atomically (built beside `directory`, then renamed).

    Weights keep the model's dtype (the released checkpoints are bfloat16; the speech tokenizer is
    float32). `config` / `speech_tokenizer_config` / `preprocessor_config` replace the files that
    `save_pretrained` re-serialises, to test a released file format verbatim; without them
    `speaker_encoder_config.model_type`, which the config class rejects on reload, is dropped.
    `speech_tokenizer_dir`: an identical speech tokenizer already saved there is hard-linked instead.
    `write_processor=False` leaves the text tokenizer's files to the caller.
    """
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tts.model.save_pretrained(tmp)
    if write_processor:
        tts.processor.save_pretrained(tmp)
    config_path = tmp / "config.json"
    if config is None:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config.get("speaker_encoder_config", {}).pop("model_type", None)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer_dir = tmp / "speech_tokenizer"
    if speech_tokenizer_dir is not None:
        tokenizer_dir.mkdir()
        for file in Path(speech_tokenizer_dir).iterdir():
            _link_or_copy(file, tokenizer_dir / file.name)
    else:
        tokenizer = tts.model.speech_tokenizer
        tokenizer.model.save_pretrained(tokenizer_dir)
        tokenizer.feature_extractor.save_pretrained(tokenizer_dir)
    if speech_tokenizer_config is not None:
        (tokenizer_dir / "config.json").write_text(json.dumps(speech_tokenizer_config, indent=2), encoding="utf-8")
    if preprocessor_config is not None:
        (tokenizer_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor_config, indent=2), encoding="utf-8")
    (tmp / "generation_config.json").write_text(json.dumps(tts.model.generate_config), encoding="utf-8")
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def save_tiny_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """The tiny model as a local checkpoint folder (what 'tiny-random' builds in memory)."""
    return save_checkpoint(build_tiny_qwen3_tts(seed), directory)
