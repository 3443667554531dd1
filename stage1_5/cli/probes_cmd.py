"""`stage1_5 probes --features FILE --dataset PATH -o OUT`: probe precomputed features.

Needs only `metadata.csv` (audio may be absent). Writes OUT/metrics.csv, OUT/predictions.csv,
OUT/confusion/<representation>.csv (':' written as '__'; other names as `stage1_5.names.safe_file_name`
makes them) and OUT/label_map.json. OUT is locked while it is written, as `run` locks its run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click


@click.command("probes")
@click.option("--features", "features_file", required=True, type=click.Path(dir_okay=False), help="Features: .npz or .parquet keyed by utt_id.")
@click.option("--dataset", "dataset_path", required=True, type=click.Path(), help="Dataset folder or zip (metadata.csv is enough).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), default=None, help="Experiment config (YAML); its probes: section is used.")
@click.option("--seeds", type=int, default=None, help="Repetitions of the outer CV (probes.seeds).")
@click.option("--permutations", type=int, default=None, help="Speaker-level permutations for p-values; 0 skips (probes.permutations).")
@click.option("--bootstrap", type=int, default=None, help="Cluster-bootstrap resamples for the CI; 0 skips (probes.bootstrap).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Where the batched probes run (probes.device).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--wait", is_flag=True, help="If another process is writing OUT, wait for it instead of stopping with exit 2.")
def command(
    features_file: str,
    dataset_path: str,
    out_dir: str,
    config_file: Optional[str],
    seeds: Optional[int],
    permutations: Optional[int],
    bootstrap: Optional[int],
    device: Optional[str],
    no_progress: bool,
    wait: bool,
) -> None:
    """Train accent probes on precomputed features and write metrics, predictions and confusions."""
    from stage1_5.cli.overrides import override
    from stage1_5.config import Stage15Config, load_config
    from stage1_5.data.dataset import load_dataset
    from stage1_5.features.external import align_features, load_external_features
    from stage1_5.paths import cache_paths
    from stage1_5.pipeline import output_folder_lock, save_probe_results
    from stage1_5.probes import evaluate_representations
    from stage1_5.runtime import configure_torch_threads

    cfg = load_config(config_file) if config_file else Stage15Config()
    updates = {"seeds": seeds, "permutations": permutations, "bootstrap": bootstrap, "device": device}
    probes = override(cfg.probes, updates, key="probes")
    dataset_cfg = cfg.dataset.model_copy(update={"audio_required": False})
    progress = not no_progress
    configure_torch_threads()
    dataset = load_dataset(dataset_path, dataset_cfg, work_dir=cache_paths(cfg.output).datasets, progress=progress)
    ids, arrays = load_external_features(features_file)
    vectors = align_features(ids, arrays, dataset.utterances.ids, source=features_file)
    with output_folder_lock(Path(out_dir), wait=wait):  # two `probes -o SAME` never mix their files
        results = evaluate_representations(vectors, dataset.utterances.to_frame(), probes, alpha=cfg.experiment.alpha, progress=progress)
        save_probe_results(results, Path(out_dir))
    for note in results.notes:
        click.echo(f"note: {note}", err=True)
    shown = results.metrics[["representation", "accent_f1", "p_value", "p_value_fwer", "text_drop", "leak_excess_pp", "speaker_acc"]]
    click.echo(shown.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    click.echo(f"wrote {Path(out_dir) / 'metrics.csv'}")
