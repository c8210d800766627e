"""Evaluation metrics (torch + torchmetrics only; no Lightning, no Hydra).

* ``classifier``: the project's small image classifier (train once, cache), accuracy,
  class histograms, confusion matrices.
* ``features``: feature extractors for FID/KID (classifier features; Inception-v3, lazily,
  from the optional ``[inception]`` extra).
* ``fid``: ``FeatureStats``, the exact ``frechet_distance`` (source of truth), torchmetrics
  FID/KID (``FidKid``, ``compute_fid_kid``, ``kid_from_features``), the FID's bootstrap spread (``bootstrap_fid_sd``).
* ``cache``: reference statistics computed once per (dataset, resolution, extractor).
"""

from diffusion_lab.metrics.cache import cached_reference_stats, reference_stats_key
from diffusion_lab.metrics.classifier import (
    SmallClassifier,
    class_histogram,
    classifier_accuracy,
    confusion_matrix,
    load_or_train_classifier,
    predict_proba,
    train_classifier,
)
from diffusion_lab.metrics.features import (
    ClassifierFeatures,
    InceptionFeatures,
    inception_features,
    to_uint8_rgb,
)
from diffusion_lab.metrics.fid import (
    FeatureStats,
    FidKid,
    bootstrap_fid_sd,
    compute_fid_kid,
    extract_features,
    fid_from_stats,
    frechet_distance,
    kid_from_features,
    stats_from_images,
)

__all__ = [
    "ClassifierFeatures",
    "FeatureStats",
    "FidKid",
    "InceptionFeatures",
    "SmallClassifier",
    "bootstrap_fid_sd",
    "cached_reference_stats",
    "class_histogram",
    "classifier_accuracy",
    "compute_fid_kid",
    "confusion_matrix",
    "extract_features",
    "fid_from_stats",
    "frechet_distance",
    "inception_features",
    "kid_from_features",
    "load_or_train_classifier",
    "predict_proba",
    "reference_stats_key",
    "stats_from_images",
    "to_uint8_rgb",
    "train_classifier",
]
