"""Data layer: typed manifests, dataset loading and validation, synthetic and demo data."""

from stage1_5.data.manifest import Utterance, UtteranceSet

__all__ = ["Utterance", "UtteranceSet"]
