"""`stage1_5 run` with representation names that look like paths writes only inside its run folder."""

from __future__ import annotations

from click.testing import CliRunner

from fixtures.testing import write_planted_case
from stage1_5.cli import cli


def test_run_with_path_like_array_names_writes_only_inside_the_run_and_cache_folders(tmp_path):
    root = tmp_path / "case"
    escaped = tmp_path / "escaped" / "evil"
    hostile = {"backbone:decoder_block_08": 3.0, "../../../../evil:x": 1.0, f"{escaped}:y": 1.0, "ref:" + "q" * 300: 1.0}
    config = write_planted_case(root, hostile)
    before = {p for p in tmp_path.rglob("*")}
    result = CliRunner().invoke(cli, ["run", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    new = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert new and all(p.is_relative_to(root / "run") or p.is_relative_to(root / "cache") for p in new)
    assert not (tmp_path / "escaped").exists()
    assert len(list((root / "run" / "artifacts" / "analysis" / "confusion").glob("*.csv"))) == len(hostile)
