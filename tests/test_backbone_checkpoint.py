"""Finding a checkpoint without a retry loop: local folders, the Hugging Face cache, one probe of the hub.

No test reaches the network: the hub's one metadata request (`HfApi.model_info`) is replaced by a
stand-in that counts its calls and answers as an unreachable hub or a missing repository would."""

from __future__ import annotations

import json

import huggingface_hub
import huggingface_hub.constants
import pytest
import requests
from huggingface_hub.errors import RepositoryNotFoundError

from stage1_5.backbone.checkpoint import inspect_checkpoint
from stage1_5.backbone.released import released_config
from stage1_5.errors import FeatureError

REPO_ID = "Qwen/Qwen3-TTS-12Hz-1.7B-Base"


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE unset; returns the list of model_info calls. Set `.answer` to the exception to raise."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls: list[str] = []

    def model_info(self, repo_id, **kwargs):
        calls.append(repo_id)
        raise calls_answer[0]

    calls_answer = [requests.ConnectionError("Failed to resolve 'huggingface.co'")]
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    return calls, calls_answer


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def _cache(root, repo_id: str, config: dict):
    snapshot = root / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    (snapshot / "config.json").write_text(json.dumps(config))
    return snapshot


def test_an_unreachable_hub_is_probed_once_and_fails_in_one_line(online, empty_cache):
    calls, _ = online
    with pytest.raises(FeatureError, match=r"cannot be reached to fetch it \(ConnectionError\); give a local folder, or set HF_HUB_OFFLINE=1") as info:
        inspect_checkpoint(REPO_ID)
    assert calls == [REPO_ID] and "\n" not in str(info.value)


def test_a_name_that_is_neither_a_folder_nor_on_the_hub_says_both(online, empty_cache):
    calls, answer = online
    answer[0] = RepositoryNotFoundError("404")
    with pytest.raises(FeatureError, match=r"'models/qwen' is not a local folder \(.*models/qwen does not exist\), and no model of that name is on the Hugging Face hub"):
        inspect_checkpoint("models/qwen")
    assert calls == ["models/qwen"]


def test_a_cached_checkpoint_with_the_hub_unreachable_is_loaded_from_its_snapshot(online, empty_cache):
    calls, _ = online
    snapshot = _cache(empty_cache, REPO_ID, released_config("1.7B-Base"))
    info = inspect_checkpoint(REPO_ID)
    assert (info.origin, info.location, info.n_layers, info.hidden_size) == ("hub-cache", str(snapshot), 28, 2048)
    assert calls == [REPO_ID]


def test_offline_a_checkpoint_missing_from_the_cache_is_one_line_and_no_request(empty_cache, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("the hub was asked while offline"))
    with pytest.raises(FeatureError, match=r"not in the Hugging Face cache while HF_HUB_OFFLINE is set; download it once online"):
        inspect_checkpoint(REPO_ID)


def test_a_path_that_cannot_be_a_hub_name_is_a_missing_local_folder(online):
    calls, _ = online
    with pytest.raises(FeatureError, match=r"local folder 'checkpoints/qwen/1.7b' not found"):
        inspect_checkpoint("checkpoints/qwen/1.7b")
    assert calls == []


def test_a_folder_of_another_model_type_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wavlm"}))
    with pytest.raises(FeatureError, match=r"has config.json model_type 'wavlm', which no backbone family reads \(known: qwen3_tts"):
        inspect_checkpoint(str(tmp_path))
