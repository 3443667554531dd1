"""torch.distributed extraction on CPU (gloo, 2 processes): length-balanced shards, one store entry
written by both ranks, features equal to a single-process run, resumable, failures reach every rank."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from stage1_5 import distributed
from stage1_5.data.manifest import Utterance, UtteranceSet
from stage1_5.errors import FeatureError, Stage15Error
from stage1_5.features.extract import extract_source
from stage1_5.features.store import FeatureStore
from stage1_5.features.testing import CountingExtractor, FakeDataset

N_UTTS = 37
WORLD = 2


def _utterances(n: int = N_UTTS) -> UtteranceSet:
    rng = np.random.default_rng(0)
    return UtteranceSet(
        Utterance(id=f"u{i:03d}", speaker=f"s{i % 4}", accent=f"a{i % 2}", text_id=f"t{i % 3}", duration=float(rng.uniform(0.5, 6.0)))
        for i in range(n)
    )


def _extract(store_root, chunk_size: int = 256, **kwargs):
    extractor = CountingExtractor(**kwargs)
    vectors, stats = extract_source(
        extractor, FakeDataset(_utterances()), FeatureStore(store_root), batch_size=4, store_dtype="float32", chunk_size=chunk_size, progress=False
    )
    return extractor, {k: np.asarray(v) for k, v in vectors.items()}, stats


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, store_root: str, out_dir: str, fail_rank: int) -> None:
    import os

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    result: dict = {}
    with distributed.session(backend="gloo") as ctx:
        assert ctx.active
        try:
            extractor, vectors, stats = _extract(store_root, fail_after=0 if rank == fail_rank else None)
            np.savez(Path(out_dir) / f"rank{rank}.npz", **{k.replace(":", "__"): v for k, v in vectors.items()})
            result = {"computed": extractor.computed, "n_utterances": stats.n_utterances}
        except FeatureError as err:
            result = {"error": str(err)}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))


def _run_two_ranks(tmp_path: Path, store_root: Path, fail_rank: int = -1) -> list[dict]:
    out = tmp_path / f"out{_free_port()}"
    out.mkdir()
    mp.spawn(_rank_main, args=(_free_port(), str(store_root), str(out), fail_rank), nprocs=WORLD, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) | {"dir": out} for r in range(WORLD)]


def test_length_balanced_shards_cover_every_item_once_with_near_equal_totals():
    weights = [float(w) for w in np.random.default_rng(1).uniform(0.5, 20.0, 101)]
    shards = distributed.length_balanced_shards(weights, 4)
    assert sorted(i for shard in shards for i in shard) == list(range(101))
    totals = [sum(weights[i] for i in shard) for shard in shards]
    assert max(totals) - min(totals) <= max(weights)


def test_length_balanced_shards_are_the_same_on_every_call():
    weights = [3.0, 1.0, 2.0, 2.0, 5.0]
    assert distributed.length_balanced_shards(weights, 2) == distributed.length_balanced_shards(list(weights), 2)


def test_from_env_reads_torchrun_variables_and_rejects_a_rank_outside_the_world():
    ctx = distributed.from_env({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "0"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (1, 3, 0, False)
    assert distributed.from_env({}).world_size == 1
    with pytest.raises(Stage15Error, match="RANK=3 is outside WORLD_SIZE=2"):
        distributed.from_env({"RANK": "3", "WORLD_SIZE": "2"})


def test_single_process_collectives_are_identities():
    ctx = distributed.current()
    assert not ctx.active
    assert ctx.broadcast({"a": 1}) == {"a": 1} and ctx.gather(5) == [5]


def test_two_gloo_ranks_write_features_equal_to_a_single_process_run(tmp_path):
    _, single, _ = _extract(tmp_path / "single")
    reports = _run_two_ranks(tmp_path, tmp_path / "shared")
    computed = [set(r["computed"]) for r in reports]
    assert computed[0] and computed[1] and not computed[0] & computed[1]  # both ranks worked, on disjoint utterances
    assert computed[0] | computed[1] == set(_utterances().ids)
    for rank in range(WORLD):
        with np.load(reports[rank]["dir"] / f"rank{rank}.npz") as got:
            for name, want in single.items():
                np.testing.assert_array_equal(got[name.replace(":", "__")], want)
    assert all(r["n_utterances"] == N_UTTS for r in reports)  # every rank reports the job's total


def test_two_gloo_ranks_resume_a_killed_single_process_run(tmp_path):
    store = tmp_path / "shared"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _extract(store, chunk_size=4, fail_after=3)  # chunks 0-2 (12 utterances) are on disk
    reports = _run_two_ranks(tmp_path, store)
    computed = [u for r in reports for u in r["computed"]]
    assert sorted(computed) == _utterances().ids[12:]  # the ranks computed only what was missing
    rerun, _, stats = _extract(store)
    assert rerun.computed == [] and stats.from_cache


def test_a_failure_on_one_rank_stops_both_with_its_message(tmp_path):
    reports = _run_two_ranks(tmp_path, tmp_path / "shared", fail_rank=1)
    assert all("rank 1/2: simulated crash" in r.get("error", "") for r in reports)


# ----------------------------------------------------------------------------- torchrun, end to end


def _torchrun(*args: str, timeout: int = 600):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STAGE1_5_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}", "-m", "stage1_5", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _config(tmp_path: Path, data: Path, name: str, **sections) -> Path:
    import yaml

    cfg = {
        "dataset": {"path": str(data)},
        "sources": {"ssl": {"enabled": False}, "ecapa": {"enabled": False}, **sections.pop("sources", {})},
        "output": {"dir": str(tmp_path / f"run_{name}"), "cache_dir": str(tmp_path / f"cache_{name}"), "feature_chunk_size": 2},
        **sections,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_torchrun_features_backbone_on_two_ranks_equals_a_single_process_run(tmp_path):
    from click.testing import CliRunner

    from stage1_5.cli import cli
    from stage1_5.data.testing import write_dataset

    data = write_dataset(tmp_path / "data")
    backbone = {"backbone": {"checkpoint": "tiny-random", "layers": ["decoder_block_01", "text_encoder_out"], "batch_size": 2, "device": "cpu"}}
    single = _config(tmp_path, data, "single", sources=backbone)
    result = CliRunner().invoke(cli, ["features", "backbone", "-c", str(single), "-o", str(tmp_path / "single.npz"), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ranked = _config(tmp_path, data, "ranked", sources=backbone)
    run = _torchrun("features", "backbone", "--config", str(ranked), "-o", str(tmp_path / "ranked.npz"), "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "backbone: rank 0/2: " in run.stderr and "backbone: rank 1/2: " in run.stderr
    assert "(computed on 2 ranks)" in run.stdout
    with np.load(tmp_path / "single.npz") as want, np.load(tmp_path / "ranked.npz") as got:
        assert list(got["utt_id"]) == list(want["utt_id"])
        for name in ("backbone:decoder_block_01", "backbone:text_encoder_out"):
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5)  # other batch companions: padding only


def test_torchrun_run_extracts_on_both_ranks_and_reports_once(tmp_path):
    from stage1_5.data.testing import write_dataset

    data = write_dataset(tmp_path / "data")
    cfg = _config(tmp_path, data, "run", sources={"backbone": {"enabled": False}}, probes={"seeds": 1, "permutations": 0, "bootstrap": 0})
    run = _torchrun("run", str(cfg), "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "acoustic: rank 0/2: " in run.stderr and "acoustic: rank 1/2: " in run.stderr
    assert "probes: rank 0/2: " in run.stderr and "probes: rank 1/2: " in run.stderr  # both ranks share the probe stage
    assert run.stdout.count("Decision: ") == 1
    assert (tmp_path / "run_run" / "report" / "stage1_5_report.md").is_file()
    assert (tmp_path / "run_run" / "run.log").read_text().count("run started") == 1  # rank 0 alone writes the log


# ----------------------------------------------------------------------------- the probe stage on ranks


def _probe_inputs():
    """Five representations in two families: one with a planted accent (its family runs every
    permutation), one without (its family stops early), so both the first stage and the sequential
    stop's extra permutations are shared among the ranks."""
    from stage1_5.config import ProbeConfig
    from stage1_5.probes.planted import planted_dataset

    features, meta = {}, None
    for i, (family, accent) in enumerate([("backbone", 0.8), ("backbone", 0.3), ("backbone", 0.0), ("ecapa", 0.0), ("ecapa", 0.0)]):
        data = planted_dataset(speakers_per_accent=4, n_texts=4, dim=8 + 4 * i, accent=accent, speaker=0.3, name=f"{family}:layer_{i:02d}", random_state=i)
        features.update(data.features)
        meta = data.meta
    return features, meta, ProbeConfig(seeds=1, permutations=59, bootstrap=0, c_grid=[1.0], device="cpu")


def _probe_rank_main(rank: int, port: int, out_dir: str) -> None:
    import contextlib
    import io
    import os

    import torch

    from stage1_5.probes import evaluate_representations

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    features, meta, cfg = _probe_inputs()
    log = io.StringIO()
    with distributed.session(backend="gloo") as ctx, contextlib.redirect_stderr(log):
        res = evaluate_representations(features, meta, cfg, alpha=0.05, progress=False, ranks=ctx)
    res.metrics.to_csv(Path(out_dir) / f"rank{rank}.csv", index=False)
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps({"log": log.getvalue(), "notes": res.notes}))


def test_rank_share_splits_representations_by_width_disjointly_and_in_order():
    from stage1_5.probes.protocol import rank_share

    widths = {"a": 2048, "b": 768, "c": 768, "d": 192, "e": 2048}
    shares = [rank_share(distributed.DistContext(rank=r, world_size=2), widths) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(widths) and not set(shares[0]) & set(shares[1])
    assert all(share == [n for n in widths if n in share] for share in shares)  # the given order
    assert abs(sum(widths[n] for n in shares[0]) - sum(widths[n] for n in shares[1])) <= max(widths.values())
    assert rank_share(distributed.SINGLE, widths) == list(widths)


def test_two_gloo_ranks_probe_disjoint_shares_and_give_a_single_process_p_values(tmp_path):
    import pandas as pd
    import torch

    from stage1_5.config import ExperimentConfig
    from stage1_5.decision import decide
    from stage1_5.probes import evaluate_representations

    features, meta, cfg = _probe_inputs()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = evaluate_representations(features, meta, cfg, alpha=0.05, progress=False)
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_probe_rank_main, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    shares = [int(log["log"].split(f"probes: rank {r}/{WORLD}: ")[1].split()[0]) for r, log in enumerate(logs)]
    assert min(shares) >= 1 and sum(shares) == len(features)  # each rank probed its own share
    assert any("ecapa: family-wise p ≥ alpha settled" in n for n in single.notes)  # the sequential stop was exercised
    for r in range(WORLD):
        got = pd.read_csv(tmp_path / f"rank{r}.csv")
        assert list(got.representation) == list(single.metrics.representation)
        for column in ("p_value", "p_value_fwer", "accent_f1", "n_permutations"):
            np.testing.assert_array_equal(got[column].to_numpy(), single.metrics[column].to_numpy())
        assert logs[r]["notes"] == single.notes
        assert decide(got, ExperimentConfig()).decision == decide(single.metrics, ExperimentConfig()).decision


BLOCK_CASES = {  # name → the representations probed: (name, planted accent strength)
    "one representation": [("backbone:layer_00", 0.8)],
    "a family of two": [("backbone:layer_00", 0.8), ("backbone:layer_01", 0.0)],
    "one settled representation": [("ecapa:layer_00", 0.0)],
}
TEST_PERM_BLOCK = 10
"""Blocks of 10 of the 59 permutations: the first look's 12 are two blocks, the remaining 47 five."""


def _block_case_inputs(case: str):
    from stage1_5.config import ProbeConfig
    from stage1_5.probes.planted import planted_dataset

    features, meta = {}, None
    for i, (name, accent) in enumerate(BLOCK_CASES[case]):
        data = planted_dataset(speakers_per_accent=4, n_texts=4, dim=8 + 4 * i, accent=accent, speaker=0.3, name=name, random_state=i)
        features.update(data.features)
        meta = data.meta
    return features, meta, ProbeConfig(seeds=1, permutations=59, bootstrap=0, c_grid=[1.0], device="cpu")


def _block_rank_main(rank: int, port: int, out_dir: str) -> None:
    import contextlib
    import io
    import os

    import torch

    from stage1_5.probes import evaluate_representations, protocol

    torch.set_num_threads(1)
    protocol.PERM_BLOCK = TEST_PERM_BLOCK
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    with distributed.session(backend="gloo") as ctx:
        for k, case in enumerate(BLOCK_CASES):
            features, meta, cfg = _block_case_inputs(case)
            log = io.StringIO()
            with contextlib.redirect_stderr(log):
                res = evaluate_representations(features, meta, cfg, alpha=0.05, progress=False, ranks=ctx)
            res.metrics.to_csv(Path(out_dir) / f"case{k}_rank{rank}.csv", index=False)
            (Path(out_dir) / f"case{k}_rank{rank}.json").write_text(json.dumps({"log": log.getvalue(), "notes": res.notes}))


def test_perm_blocks_cover_the_permutations_in_order_with_a_size_independent_of_the_world():
    from stage1_5.probes.protocol import PERM_BLOCK, perm_blocks

    blocks = perm_blocks(12, 12 + 2 * PERM_BLOCK + 3)
    assert blocks == [(12, 12 + PERM_BLOCK), (12 + PERM_BLOCK, 12 + 2 * PERM_BLOCK), (12 + 2 * PERM_BLOCK, 12 + 2 * PERM_BLOCK + 3)]
    assert perm_blocks(5, 5) == []


def test_block_share_gives_every_block_to_one_rank_and_uses_every_rank_for_one_representation():
    from stage1_5.probes.protocol import block_share, perm_blocks

    widths = {"backbone:layer_00": 1024}
    shares = [block_share(distributed.DistContext(rank=r, world_size=WORLD), widths, 0, 199, probed=True) for r in range(WORLD)]
    assert sorted(shares[0] + shares[1]) == [("backbone:layer_00", a, b) for a, b in perm_blocks(0, 199)]
    assert all(shares)  # one representation still keeps both ranks busy
    perms = [sum(b - a for _, a, b in share) for share in shares]
    assert perms[1] > perms[0]  # rank 0 also probes the representation itself, so rank 1 takes more permutations
    assert block_share(distributed.SINGLE, widths, 0, 199) == [("backbone:layer_00", a, b) for a, b in perm_blocks(0, 199)]


def test_length_balanced_shards_count_the_work_a_shard_already_has():
    assert distributed.length_balanced_shards([3.0, 1.0], 2, loads=[5.0, 0.0]) == [[], [0, 1]]
    with pytest.raises(ValueError, match="loads has 1 entries for world_size 2"):
        distributed.length_balanced_shards([1.0], 2, loads=[1.0])


def test_two_gloo_ranks_split_one_representations_permutation_blocks_and_give_a_single_process_result(tmp_path, monkeypatch):
    import pandas as pd
    import torch

    from stage1_5.config import ExperimentConfig
    from stage1_5.decision import decide
    from stage1_5.probes import evaluate_representations, protocol

    monkeypatch.setattr(protocol, "PERM_BLOCK", TEST_PERM_BLOCK)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        singles = [evaluate_representations(*_block_case_inputs(case)[:3], alpha=0.05, progress=False) for case in BLOCK_CASES]
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_block_rank_main, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    assert singles[0].metrics.n_permutations.tolist() == [59] and singles[1].metrics.n_permutations.tolist() == [59, 59]  # past the first look
    assert singles[2].metrics.n_permutations.tolist() == [12] and any("settled after 12 of 59" in n for n in singles[2].notes)
    for k, single in enumerate(singles):
        for r in range(WORLD):
            log = json.loads((tmp_path / f"case{k}_rank{r}.json").read_text())
            got = pd.read_csv(tmp_path / f"case{k}_rank{r}.csv")
            assert list(got.representation) == list(single.metrics.representation)
            for column in ("p_value", "p_value_fwer", "accent_f1", "n_permutations", "null_f1_mean"):
                np.testing.assert_array_equal(got[column].to_numpy(), single.metrics[column].to_numpy())
            assert log["notes"] == single.notes
            assert decide(got, ExperimentConfig()).decision == decide(single.metrics, ExperimentConfig()).decision
    one = [json.loads((tmp_path / f"case0_rank{r}.json").read_text())["log"] for r in range(WORLD)]
    assert "rank 1/2: 0 representations" in one[1]  # rank 1 has no representation of its own ...
    first = [int(log.split("representations, ")[1].split()[0]) for log in one]
    more = [int(log.split("rank ")[2].split(": ")[1].split()[0]) for log in one]
    assert min(first) >= 1 and sum(first) == 2  # ... yet computes permutation blocks of the first look
    assert min(more) >= 1 and sum(more) == 5  # and of the sequential stop's remaining permutations
