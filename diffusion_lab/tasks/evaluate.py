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
    result["eval_guidance_scale"] = w
    result["sample_accuracy"] = result[f"sample_accuracy_w{w:g}"] = classifier_accuracy(clf, x, labels)
    result["sample_count"] = len(x)

    features = ClassifierFeatures(clf)
    train = datamodule.train_set
    key = reference_stats_key(cfg.data.name, train.shape[-1], f"classifier-{state_digest(clf)}")
    real = cached_reference_stats(
        cfg.paths.cache_dir, key, lambda: stats_from_images(features, train.x)
    )
    fid = fid_from_stats(stats_from_images(features, x), real)
    result["fid_classifier"] = result[f"fid_classifier_w{w:g}"] = fid
    result["fid_real_count"] = len(train)
    if datamodule.val_set is not None:
        # The floor to read the FID against: held-out real images vs the same training stats.
        result["fid_classifier_val_vs_train"] = fid_from_stats(
            stats_from_images(features, datamodule.val_set.x), real
        )
        result["fid_val_count"] = len(datamodule.val_set)
    per_class = min(10, cfg.eval.samples_per_class)
    keep = torch.cat([torch.nonzero(labels == c)[:per_class, 0] for c in range(module.num_classes)])
    save_grid(x[keep], run_dir / f"eval_samples_w{w:g}.png", nrow=per_class,
              upscale=max(1, 32 // x.shape[-1]))
    return result


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """scripts/evaluate.py: rebuild the checkpoint's model and data, then evaluate_module."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from diffusion_lab.tasks.build import build_sampler, module_from_checkpoint
    from diffusion_lab.tasks.io import atomic_write_json, load_checkpoint_file
    from diffusion_lab.tasks.validate import validate_sampling

    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt).to(cfg.device)
    validate_sampling(cfg, module.schedule.num_steps)
    module.sampler = build_sampler(cfg)
    train_cfg = OmegaConf.create(ckpt["diffusion_lab_config"])
    datamodule = instantiate(train_cfg.data.module, _convert_="all")
    datamodule.setup("fit")
    eval_cfg = OmegaConf.create(
        {
            "paths": {"cache_dir": cfg.paths.cache_dir},
            "data": {"name": train_cfg.data.name},
            "eval": {
                "samples_per_class": cfg.samples_per_class,
                "guidance_scale": cfg.guidance.scale,
                "seed": cfg.seed,
            },
        }
    )
    run_dir = Path(cfg.paths.run_dir)
    result = {
        "checkpoint": str(cfg.ckpt),
        "global_step": ckpt.get("global_step"),
        "sampler": cfg.sampler.solver._target_,
        "steps": cfg.sampler.steps,
        "nfe_per_sample": module.sampler.nfe,
        "guidance_scale": cfg.guidance.scale,
        **evaluate_module(module, datamodule, eval_cfg, run_dir),
    }
    atomic_write_json(result, run_dir / "metrics.json")
    for k, v in result.items():
        print(f"{k}: {v}")
    return result
