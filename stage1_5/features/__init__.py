"""Feature extraction: one vector per utterance per representation (`source:layer`), through a
chunked, content-addressed, resumable on-disk store.

Heavy model code is imported by the extractor modules on first use, not here.
"""

from stage1_5.features.base import FeatureBatch, FeatureExtractor
from stage1_5.features.extract import ExtractionStats, FeatureSet, export_features, extract_features
from stage1_5.features.store import FeatureStore, StoreEntry, StoreKey

__all__ = [
    "ExtractionStats",
    "FeatureBatch",
    "FeatureExtractor",
    "FeatureSet",
    "FeatureStore",
    "StoreEntry",
    "StoreKey",
    "export_features",
    "extract_features",
]
