"""Class-conditional sample quality, judged by a classifier trained on the real data.

For a labelled image dataset: samples_per_class samples of every class at the given
guidance scale (fixed per-sample seeds), then
  - accuracy: fraction the classifier assigns to the class they were generated for;
  - FID against the real training images in the classifier's feature space;
  - the classifier's own accuracy on the real validation split (its reliability).
Every number is reported beside the sample counts it was computed from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from diffusion_lab.callbacks.sample_grid import grid_labels
from diffusion_lab.metrics.cache import cached_reference_stats, reference_stats_key
from diffusion_lab.metrics.classifier import classifier_accuracy, load_or_train_classifier
from diffusion_lab.metrics.features import ClassifierFeatures, state_digest
from diffusion_lab.metrics.fid import fid_from_stats, stats_from_images
from diffusion_lab.utils.images import save_grid

log = logging.getLogger(__name__)


def data_classifier(datamodule, cache_dir: str | Path, name: str):
    """The project's classifier for this dataset's training split (trained once, cached)."""
    train = datamodule.train_set
    size = train.shape[-1]
    return load_or_train_classifier(
        train.x, train.y, datamodule.num_classes, cache_dir, key=f"{name}-{size}px"
    )


def evaluate_module(module, datamodule, cfg: DictConfig, run_dir: Path) -> dict:
    """Accuracy and FID of class-conditional samples; {} for unlabelled or non-image data."""
    from diffusion_lab.tasks.sample import generate

    if module.num_classes == 0 or len(datamodule.shape) != 3:
        return {}
    clf = data_classifier(datamodule, cfg.paths.cache_dir, cfg.data.name)
    result = {}
    if datamodule.val_set is not None:
        val = datamodule.val_set
        result["classifier_val_accuracy"] = classifier_accuracy(clf, val.x, val.y)
        result["classifier_val_count"] = len(val)

    labels = grid_labels(module.num_classes, cfg.eval.samples_per_class)
    x = generate(
        module, module.sampler, labels=labels, num_samples=len(labels),
        seed=cfg.eval.seed, batch_size=500, guidance_scale=cfg.eval.guidance_scale, use_ema=True,
    )
    w = cfg.eval.guidance_scale
    result[f"sample_accuracy_w{w:g}"] = classifier_accuracy(clf, x, labels)
    result["sample_count"] = len(x)

    features = ClassifierFeatures(clf)
    train = datamodule.train_set
    key = reference_stats_key(cfg.data.name, train.shape[-1], f"classifier-{state_digest(clf)}")
    real = cached_reference_stats(
        cfg.paths.cache_dir, key, lambda: stats_from_images(features, train.x)
    )
    result[f"fid_classifier_w{w:g}"] = fid_from_stats(stats_from_images(features, x), real)
    result["fid_real_count"] = len(train)
    save_grid(x, run_dir / f"eval_samples_w{w:g}.png", nrow=cfg.eval.samples_per_class,
              upscale=max(1, 32 // x.shape[-1]))
    return result
