"""Stage 2 example: a few LoRA steps on the Qwen3-TTS talker while `AccentMonitor` watches a layer.

    .venv/bin/python examples/stage2_lora_monitor.py runs/demo --layer decoder_block_02 --steps 3

It reads the run's accent directions (`artifacts/stage2/`), loads the run's backbone checkpoint and
dataset, puts LoRA adapters (PEFT) on the q/v projections of the talker blocks, and trains them with
the talker's own first-codebook language-model loss on teacher-forced (transcript, audio) batches,
through a `transformers.Trainer` whose `AccentMonitorCallback` logs the frozen probe's accent F1,
leakage excess and accent-direction norm on held-out speakers every N steps. The loss is only a
stand-in for an accent-control objective: the point is the wiring (the same hook names and pooling
as extraction, readings in `trainer.state.log_history`). `tests/test_stage2_monitor.py` runs
`train_with_monitor` on the tiny model.

Here the held-out speakers are the last two of each accent in the run's own dataset, which the
frozen probe was fit on, so their F1 reads optimistically; a real Stage 2 monitors speakers outside
the probing set.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from stage1_5.backbone.families.qwen3_tts import SAMPLE_RATE, EncodedBatch, build_teacher_forced_inputs, encode_utterances
from stage1_5.stage2 import AccentMonitor, AccentMonitorCallback

LORA_TARGETS = r"model\.layers\.\d+\.self_attn\.(q_proj|v_proj)"
"""The talker blocks' attention q/v projections (not the code predictor's, whose names start with code_predictor.)."""


class TalkerCodecLM(torch.nn.Module):
    """The talker's next-frame loss on codebook 0 over pre-encoded utterances; `forward(index)` takes a
    batch of utterance indices (so the Trainer's collator only stacks integers)."""

    def __init__(self, tts, talker: torch.nn.Module, utterances: Sequence):
        super().__init__()
        self.talker = talker  # the PEFT-wrapped talker: its LoRA weights are the only trainable ones
        self._tts = [tts]  # not a submodule: the optimiser must not see the frozen rest of the model
        with torch.no_grad():
            self.items = [
                encode_utterances(tts, [u.load_audio(SAMPLE_RATE)], [u.text or u.text_id], speaker_slot="xvector") for u in utterances
            ]

    def forward(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        tts = self._tts[0]
        parts = [self.items[int(i)] for i in index]
        batch = EncodedBatch(
            transcript_ids=[p.transcript_ids[0] for p in parts],
            codes=[p.codes[0] for p in parts],
            speaker=torch.cat([p.speaker for p in parts]),
            role_ids=parts[0].role_ids,
            language_id=parts[0].language_id,
        )
        inputs = build_teacher_forced_inputs(tts.model, batch)
        labels = torch.full(inputs.attention_mask.shape, -100, dtype=torch.long)
        labels[inputs.position_masks["audio"]] = inputs.codes[inputs.frame_mask][:, 0].cpu()
        out = tts.model.talker(
            inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask, labels=labels.to(inputs.attention_mask.device), use_cache=False
        )
        return {"loss": out.loss}


def train_with_monitor(
    tts,
    run_dir: str | Path,
    layer: str,
    train: Sequence,
    heldout: Sequence,
    *,
    steps: int = 3,
    every_n_steps: int = 1,
    batch_size: int = 4,
    learning_rate: float = 5e-3,
    output_dir: str | Path | None = None,
):
    """LoRA on the talker for `steps` optimiser steps, monitored; returns (trainer, callback)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    monitor = AccentMonitor(run_dir, layer)
    callback = AccentMonitorCallback(monitor, tts, heldout, every_n_steps=every_n_steps)
    talker = get_peft_model(tts.model.talker, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS))
    model = TalkerCodecLM(tts, talker, train)
    args = TrainingArguments(
        output_dir=str(output_dir or tempfile.mkdtemp(prefix="stage2_lora_")),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    collate = lambda indices: {"index": torch.tensor(indices)}  # noqa: E731
    trainer = Trainer(model=model, args=args, train_dataset=list(range(len(train))), data_collator=collate, callbacks=[callback])
    trainer.train()
    return trainer, callback


def main(argv: Sequence[str] | None = None) -> None:
    from stage1_5.backbone.checkpoint import check_backbone, load_backbone
    from stage1_5.config import load_config
    from stage1_5.data.dataset import load_dataset
    from stage1_5.paths import cache_paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--layer", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--every", type=int, default=1)
    args = parser.parse_args(argv)
    cfg = load_config(args.run_dir / "config" / "stage1_5.resolved.yaml")
    dataset = load_dataset(cfg.dataset.path, cfg.dataset, work_dir=cache_paths(cfg.output).datasets, progress=False)
    tts = load_backbone(check_backbone(cfg.sources.backbone), seed=cfg.sources.backbone.seed)
    utterances = list(dataset.utterances)
    by_accent: dict[str, list[str]] = {}
    for u in utterances:
        by_accent.setdefault(u.accent, [])
        if u.speaker not in by_accent[u.accent]:
            by_accent[u.accent].append(u.speaker)
    held_speakers = {s for speakers in by_accent.values() for s in sorted(speakers)[-2:]}
    heldout = [u for u in utterances if u.speaker in held_speakers]
    train = [u for u in utterances if u.speaker not in held_speakers]
    _, callback = train_with_monitor(tts, args.run_dir, args.layer, train, heldout, steps=args.steps, every_n_steps=args.every)
    for r in callback.history:
        print(f"step {r.step}: accent F1 {r.accent_f1:.3f}, leakage excess {r.leak_excess_pp:+.1f} pp, direction norm ×{r.direction_norm_ratio:.2f}")


if __name__ == "__main__":
    main()
