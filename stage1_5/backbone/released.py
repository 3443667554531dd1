"""Random checkpoints in the released Qwen3-TTS format, built offline from the released config files.

`qwen3_tts_configs/` holds the public config files of the released 12 Hz checkpoints (provenance in
its SOURCES.md). From them this module builds a model with random weights, in memory
(`build_released_tts`, e.g. the real 1.7B Base on a GPU) or as a checkpoint folder that loads through
`Qwen3TTSModel.from_pretrained(dir)` exactly as a downloaded one (`save_released_checkpoints`). A
`Reduction` shrinks only depth and the text-embedding width, so a folder builds in seconds on a CPU
while every token id, codec id, rope setting, language map and the speech-tokenizer layout stay as
released. The text tokenizer is a Qwen2-format byte-level BPE of the real size (151,643 BPE tokens +
32 added tokens = 151,675, the special ones at their real ids), generated with `tokenizers`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch

from stage1_5.backbone.synthetic import assemble_random_tts, save_checkpoint
from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    from qwen_tts import Qwen3TTSModel

VARIANTS = ("0.6B-Base", "0.6B-CustomVoice", "1.7B-Base", "1.7B-CustomVoice")
"""Released checkpoints whose config files are packaged (VoiceDesign's is not public here)."""

BPE_TOKENS = 151_643
"""Byte-level BPE vocabulary of Qwen2 / Qwen3 (256 bytes + 151,387 merges)."""

ADDED_TOKENS = (
    # (content, special): ids 151643..151674 in this order, as in the Qwen3-TTS tokenizer_config.json
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False), ("<|audio_start|>", True), ("<|audio_end|>", True),
    ("<tts_pad>", True), ("<tts_text_bos>", True), ("<tts_text_eod>", True), ("<tts_text_bos_single>", True),
)
TEXT_TOKENIZER_SIZE = BPE_TOKENS + len(ADDED_TOKENS)  # 151,675
ASSISTANT = ("assistant", 77091)
"""The one ordinary word whose id the model config names (`assistant_token_id`); the package slices
the role prefix "<|im_start|>assistant\\n" as exactly three tokens."""


@dataclass(frozen=True)
class Reduction:
    """How far a released configuration is shrunk for a quick build; None keeps the released value."""

    talker_layers: Optional[int] = None
    text_hidden_size: Optional[int] = None
    code_predictor_layers: Optional[int] = None
    speech_tokenizer_layers: Optional[int] = None


FULL = Reduction()
QUICK = Reduction(talker_layers=2, text_hidden_size=32, code_predictor_layers=1, speech_tokenizer_layers=1)
"""Builds in a few seconds on a CPU; used by the tests and `gpu_check --reduced`."""


def released_file(name: str) -> dict[str, Any]:
    """One packaged config file, parsed."""
    path = resources.files("stage1_5.backbone") / "qwen3_tts_configs" / name
    return json.loads(path.read_text(encoding="utf-8"))


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise FeatureError(f"unknown released Qwen3-TTS variant {variant!r}; known: {', '.join(VARIANTS)}")


def released_config(variant: str, reduction: Reduction = FULL) -> dict[str, Any]:
    """The model's config.json as released, with `reduction` applied."""
    _check_variant(variant)
    config = released_file(f"{variant}.config.json")
    talker = config["talker_config"]
    if reduction.talker_layers is not None:
        talker["num_hidden_layers"] = reduction.talker_layers
    if reduction.text_hidden_size is not None:
        talker["text_hidden_size"] = reduction.text_hidden_size
    if reduction.code_predictor_layers is not None:
        predictor = talker["code_predictor_config"]
        predictor["num_hidden_layers"] = reduction.code_predictor_layers
        predictor["layer_types"] = predictor["layer_types"][: reduction.code_predictor_layers]
    return config


def released_speech_tokenizer_config(reduction: Reduction = FULL) -> dict[str, Any]:
    """speech_tokenizer/config.json as released, with the transformer depth of `reduction`."""
    config = released_file("speech_tokenizer.config.json")
    if reduction.speech_tokenizer_layers is not None:
        for part in ("encoder_config", "decoder_config"):
            config[part]["num_hidden_layers"] = reduction.speech_tokenizer_layers
    return config


@functools.lru_cache(maxsize=1)
def _bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE of exactly `BPE_TOKENS` tokens: the 256 byte symbols at Qwen2's ids ('\\n' is
    198), a merge chain that makes 'assistant' one token (at its real id), then pairs of existing
    tokens in a fixed order. Ordinary words split into short pieces; only the token count and the
    named ids are real."""
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    wanted = BPE_TOKENS - len(alphabet)
    merges: list[tuple[str, str]] = []
    seen = set(alphabet)

    def add(a: str, b: str) -> None:
        if len(merges) < wanted and a + b not in seen:
            seen.add(a + b)
            merges.append((a, b))

    word = ASSISTANT[0]
    for i in range(1, len(word)):
        add(word[:i], word[i])
    pieces = list(alphabet)
    while len(merges) < wanted:
        longer = []
        for a in pieces:
            for b in alphabet:
                add(a, b)
                longer.append(a + b)
            if len(merges) == wanted:
                break
        pieces = longer
    tokens = alphabet + [a + b for a, b in merges]
    j = tokens.index(word)
    tokens[j], tokens[ASSISTANT[1]] = tokens[ASSISTANT[1]], tokens[j]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_text_tokenizer(directory: str | Path) -> Path:
    """Write the tokenizer files of a Qwen2-format checkpoint: vocab.json, merges.txt and
    tokenizer_config.json with the added tokens at their real ids (as in the released folders)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = _bpe_vocab_and_merges()
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    added = {
        str(BPE_TOKENS + i): {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": special}
        for i, (content, special) in enumerate(ADDED_TOKENS)
    }
    config = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added, "bos_token": None,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


@functools.lru_cache(maxsize=1)
def released_text_tokenizer():
    """The 151,675-token Qwen2 tokenizer, assembled as transformers converts the released files
    (`Qwen2Converter`: NFC, the Qwen2 split regex, byte level), built once per process and shared
    by every model built here (tokenizers are not changed by use)."""
    from tokenizers import AddedToken
    from transformers import Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import Qwen2Converter

    class _Files:  # what the converter reads from a slow tokenizer besides vocab and merges
        add_prefix_space = False

    vocab, merges = _bpe_vocab_and_merges()
    backend = Qwen2Converter(_Files()).converted(vocab=vocab, merges=merges)
    for content, special in ADDED_TOKENS:  # one at a time: ids follow the order
        token = AddedToken(content, special=special, normalized=False)
        (backend.add_special_tokens if special else backend.add_tokens)([token])
    return Qwen2TokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, errors="replace")


def build_released_tts(
    variant: str,
    *,
    reduction: Reduction = FULL,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    device: Optional[torch.device] = None,
    attn_implementation: str = "sdpa",
    speech_tokenizer: Optional[Any] = None,
) -> "Qwen3TTSModel":
    """A released configuration with random weights, built in memory in `dtype` on `device`
    (speech tokenizer float32; `speech_tokenizer` reuses one built for another variant)."""
    return assemble_random_tts(
        released_config(variant, reduction),
        released_speech_tokenizer_config(reduction),
        released_text_tokenizer(),
        seed=seed,
        attn_implementation=attn_implementation,
        dtype=dtype,
        device=device,
        generate_config=released_file("generation_config.json"),
        speech_tokenizer=speech_tokenizer,
        init_once=True,
    )


def save_released_checkpoints(
    root: str | Path, variants: Sequence[str], *, reduction: Reduction = FULL, seed: int = 0
) -> dict[str, Path]:
    """One checkpoint folder per variant under `root` (`root/<variant>`), with random bfloat16
    weights, the released config files (reduced) verbatim and the tokenizer in the released file
    format; the variants share one float32 speech tokenizer (hard-linked), as the releases do."""
    folders: dict[str, Path] = {}
    shared = None
    for variant in variants:
        tts = build_released_tts(variant, reduction=reduction, seed=seed, dtype=torch.bfloat16, speech_tokenizer=shared)
        folder = save_checkpoint(
            tts,
            Path(root) / variant,
            config=released_config(variant, reduction),
            speech_tokenizer_config=released_speech_tokenizer_config(reduction),
            preprocessor_config=released_file("speech_tokenizer.preprocessor_config.json"),
            speech_tokenizer_dir=None if shared is None else next(iter(folders.values())) / "speech_tokenizer",
            write_processor=False,
        )
        write_text_tokenizer(folder)  # vocab.json + merges.txt + tokenizer_config.json, as released
        folders[variant] = folder
        shared = tts.model.speech_tokenizer
    return folders
