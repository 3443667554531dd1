"""stage1_5_results.zip holds report/, artifacts/analysis/, config/ (and artifacts/stage2/ when written) and nothing else."""

import zipfile

import pytest

from stage1_5.errors import Stage15Error
from stage1_5.report import BUNDLE_NAME, write_bundle


@pytest.fixture
def run_dir(tmp_path):
    files = {
        "report/stage1_5_report.md": "# report\n",
        "artifacts/analysis/metrics.csv": "representation\n",
        "artifacts/analysis/decision.json": "{}\n",
        "artifacts/analysis/heatmap.png": "png",
        "config/stage1_5.yaml": "name: x\n",
        # not part of the bundle:
        "artifacts/features/chunk_0000.npy": "x",
        "allure-results/x.json": "{}",
        "report/.stage1_5_report.md.abc.tmp": "half-written",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_bundle_members_are_exactly_the_three_folders_sorted(run_dir):
    path = write_bundle(run_dir)
    assert path == run_dir / BUNDLE_NAME
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [
            "artifacts/analysis/decision.json",
            "artifacts/analysis/heatmap.png",
            "artifacts/analysis/metrics.csv",
            "config/stage1_5.yaml",
            "report/stage1_5_report.md",
        ]
        assert zf.read("report/stage1_5_report.md") == b"# report\n"
        assert zf.testzip() is None


def test_rebundling_is_byte_identical_and_ignores_previous_zip(run_dir):
    first = write_bundle(run_dir).read_bytes()
    assert write_bundle(run_dir).read_bytes() == first


def test_no_temp_file_left_behind(run_dir):
    write_bundle(run_dir)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_missing_folder_is_a_clear_error(run_dir):
    for p in (run_dir / "config").iterdir():
        p.unlink()
    (run_dir / "config").rmdir()
    with pytest.raises(Stage15Error, match="missing folder.*config"):
        write_bundle(run_dir)
    assert not (run_dir / BUNDLE_NAME).exists()


def test_the_stage2_handoff_goes_in_when_the_run_wrote_one(run_dir):
    (run_dir / "artifacts" / "stage2").mkdir(parents=True)
    (run_dir / "artifacts" / "stage2" / "directions.json").write_text("{}\n")
    with zipfile.ZipFile(write_bundle(run_dir)) as zf:
        assert "artifacts/stage2/directions.json" in zf.namelist()
        assert "artifacts/features/chunk_0000.npy" not in zf.namelist()
