"""Bad input stops with a ProbeError / FeatureError that says what is wrong and where."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stage1_5.config import ProbeConfig
from stage1_5.errors import FeatureError, ProbeError, Stage15Error
from stage1_5.features.external import align_features, load_external_features, representation_names
from stage1_5.probes import evaluate_representations
from stage1_5.probes.planted import planted_dataset

CFG = ProbeConfig(seeds=1, permutations=0, bootstrap=0, c_grid=[1.0], device="cpu")


@pytest.fixture
def data():
    return planted_dataset(accent=1.0, speakers_per_accent=3, n_texts=4, dim=8)


def test_a_representation_with_nan_is_dropped_with_a_note_naming_row_and_utt_id(data):
    X = data.features["planted:layer_00"].copy()
    X[5, 2] = np.inf
    res = evaluate_representations({"planted:layer_00": X, "planted:good": data.features["planted:layer_00"]}, data.meta, CFG, progress=False)
    status = dict(zip(res.metrics.representation, res.metrics.status))
    assert status["planted:good"] == "ok"
    assert status["planted:layer_00"].startswith("failed:") and "row 5 (utt_id 's01_t01')" in status["planted:layer_00"]
    assert any(n.startswith("planted:layer_00 dropped") for n in res.notes)
    assert np.isnan(res.metrics.set_index("representation").loc["planted:layer_00", "accent_f1"])


def test_all_representations_failing_is_an_error(data):
    X = data.features["planted:layer_00"].copy()
    X[5, 2] = np.nan
    with pytest.raises(ProbeError, match=r"every representation failed.*row 5"):
        evaluate_representations({"planted:layer_00": X}, data.meta, CFG, progress=False)


def test_feature_rows_must_match_metadata(data):
    with pytest.raises(ProbeError, match="35 feature rows for 36 utterances"):
        evaluate_representations({"x:y": data.features["planted:layer_00"][:-1]}, data.meta, CFG, progress=False)


def test_a_single_accent_is_refused(data):
    meta = data.meta.assign(accent="only")
    with pytest.raises(ProbeError, match="at least 2 accents"):
        evaluate_representations(data.features, meta, CFG, progress=False)


def test_an_accent_with_one_speaker_is_refused(data):
    meta = data.meta.copy()
    meta.loc[meta.accent == "acc2", "speaker"] = "solo"
    with pytest.raises(ProbeError, match=r"at least 2 speakers.*'acc2': 1"):
        evaluate_representations(data.features, meta, CFG, progress=False)


def test_a_speaker_under_two_accents_is_refused(data):
    meta = data.meta.copy()
    meta.loc[0, "accent"] = "acc1"
    with pytest.raises(ProbeError, match="'s00' is listed under two accents"):
        evaluate_representations(data.features, meta, CFG, progress=False)


def test_npz_roundtrip_and_alignment_reorders_to_the_dataset(tmp_path, data):
    ids = data.meta.utt_id.to_numpy().astype(str)
    X = data.features["planted:layer_00"]
    np.savez(tmp_path / "f.npz", utt_id=ids[::-1], **{"mine:layer_03": X[::-1]})
    file_ids, arrays = load_external_features(tmp_path / "f.npz")
    aligned = align_features(file_ids, arrays, list(ids), source="f.npz")
    np.testing.assert_array_equal(aligned["mine:layer_03"], X)


def test_parquet_with_list_columns_loads(tmp_path, data):
    X = data.features["planted:layer_00"]
    table = pa.table({"utt_id": data.meta.utt_id.tolist(), "mine:a": [list(map(float, r)) for r in X]})
    pq.write_table(table, tmp_path / "f.parquet")
    ids, arrays = load_external_features(tmp_path / "f.parquet")
    assert ids == data.meta.utt_id.tolist()
    np.testing.assert_allclose(arrays["mine:a"], X)


def test_object_dtype_npz_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "f.npz", utt_id=np.array(["a", "b"], dtype=object), x=np.zeros((2, 3)))
    with pytest.raises(FeatureError, match="object dtype"):
        load_external_features(tmp_path / "f.npz")


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"PK\x03\x04 truncated"], ids=["garbage", "truncated-zip"])
def test_a_file_that_is_no_npz_is_named_without_advice_to_unpickle(tmp_path, content):
    (tmp_path / "f.npz").write_bytes(content)
    for read in (load_external_features, representation_names):
        with pytest.raises(Stage15Error, match=r"f\.npz: not a readable \.npz file") as err:
            read(tmp_path / "f.npz")
        assert "pickle" not in str(err.value)


def test_a_file_that_is_no_parquet_is_one_error_naming_it(tmp_path):
    (tmp_path / "f.parquet").write_bytes(b"not parquet at all")
    for read in (load_external_features, representation_names):
        with pytest.raises(Stage15Error, match=r"f\.parquet: not a readable parquet file"):
            read(tmp_path / "f.parquet")


def test_a_parquet_column_name_that_cannot_name_a_file_is_refused_naming_it(tmp_path):
    table = pa.table({"utt_id": ["a", "b"], "m:l\x00": pa.array([[0.0, 1.0], [1.0, 0.0]])})
    pq.write_table(table, tmp_path / "f.parquet")
    for read in (load_external_features, representation_names):
        with pytest.raises(Stage15Error, match=r"f\.parquet: array 'm:l\\x00' cannot be used as a representation name"):
            read(tmp_path / "f.parquet")


def test_nan_in_external_file_names_row_and_utt_id(tmp_path):
    x = np.zeros((3, 2), dtype=np.float32)
    x[2, 1] = np.nan
    np.savez(tmp_path / "f.npz", utt_id=np.array(["a", "b", "c"]), **{"m:l": x})
    with pytest.raises(FeatureError, match=r"'m:l'.*row 2 \(utt_id 'c'\)"):
        load_external_features(tmp_path / "f.npz")


def test_unknown_and_missing_utt_ids_are_named():
    vec = {"m:l": np.zeros((2, 3))}
    with pytest.raises(FeatureError, match=r"1 utt_id\(s\) not in the dataset, e.g. 'zz'"):
        align_features(["a", "zz"], vec, ["a", "b"], source="f.npz")
    with pytest.raises(FeatureError, match=r"no features for 1 utterance\(s\).*'c'"):
        align_features(["a", "b"], vec, ["a", "b", "c"], source="f.npz")


def test_non_2d_array_is_refused(tmp_path):
    np.savez(tmp_path / "f.npz", utt_id=np.array(["a", "b"]), **{"m:l": np.zeros(2)})
    with pytest.raises(FeatureError, match="'m:l' must be 2-D"):
        load_external_features(tmp_path / "f.npz")
