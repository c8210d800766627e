"""Super-resolution runs: the stage's checks, its end-of-training report and
``scripts/super_resolve.py`` (a checkpoint re-judged with any sampler, step count and seeds).

The report super-resolves ``super_resolution.eval_images`` held-out images (the validation
split; the training split when there is none), ``samples_per_image`` samples each, scores them
(``super_resolution.evaluation``) and writes ``super_resolution.png`` (per row: low-res blocks,
bicubic, posterior mean, samples, truth) and ``super_resolution.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import atomic_write_json
from diffusion_lab.utils.images import save_grid

MAX_EVAL_IMAGES_SHOWN = 8


def validate_super_resolution_config(cfg: DictConfig) -> None:
    """stage=super_resolution's own checks, before the model is built (one line each)."""
    from diffusion_lab.backbones.low_res_conditioned import UPSAMPLE_MODES
    from diffusion_lab.super_resolution.degradation import check_factor
    from diffusion_lab.tasks.validate import validate_pixel_image_stage

    sr = cfg.super_resolution
    validate_pixel_image_stage(cfg, "super_resolution", "super-resolution")
    if int(cfg.backbone.get("num_classes", 0) or 0):
        raise ConfigError("stage=super_resolution models are conditioned on the low-resolution "
                          "image, not on classes: keep backbone.num_classes=0")
    try:
        check_factor(int(cfg.data.image_size), sr.factor)
    except ValueError as e:
        raise ConfigError(f"super_resolution.factor: {e}") from None
    if sr.upsample not in UPSAMPLE_MODES:
        raise ConfigError(f"super_resolution.upsample must be one of {', '.join(UPSAMPLE_MODES)}, "
                          f"got {sr.upsample!r}")
    for key in ("eval_images", "samples_per_image"):
        value = sr.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"super_resolution.{key} must be an integer >= 1, got {value!r}")
    _noise_level(sr.get("aug_max", 0.0), "super_resolution.aug_max")


def _noise_level(value, name: str) -> float:
    """``value`` as a float, or ConfigError: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_aug_level(level, aug_max: float) -> float:
    """``aug_level`` of super_resolve.py: a number in [0, the model's aug_max] (a model trained
    without augmentation has aug_max 0 and only takes 0)."""
    level = _noise_level(level, "aug_level")
    if level > aug_max:
        if not aug_max:
            raise ConfigError(f"aug_level={level}: this model was trained without "
                              f"noise-conditioning augmentation (super_resolution.aug_max=0)")
        raise ConfigError(f"aug_level={level} is above the levels this model was trained on "
                          f"(super_resolution.aug_max={aug_max})")
    return level


def evaluate_super_resolution(module, datamodule, *, images: int, samples_per_image: int,
                              seed: int, run_dir: Path, cache_dir, dataset_name: str,
                              sampler=None, batch_size: int = 500, metrics: bool = True,
                              aug_level: float = 0.0) -> dict:
    from diffusion_lab.super_resolution.evaluation import (
        comparison_grid,
        heldout_images,
        super_resolution_report,
        super_resolve_all,
    )

    x, y = heldout_images(datamodule, images)
    low_res = module.low_res(x)
    spec = module.sampler_or_default(sampler)
    start = time.perf_counter()
    samples = super_resolve_all(module, low_res, samples_per_image=samples_per_image, seed=seed,
                                sampler=spec, batch_size=batch_size, aug_level=aug_level,
                                progress=f"super-resolution ({len(x)} images x {samples_per_image})")
    seconds = time.perf_counter() - start
    from diffusion_lab.evaluation import judge_if_labelled

    judge = judge_if_labelled(datamodule, cache_dir, dataset_name) if metrics else None
    report = super_resolution_report(x, low_res, samples, module.factor, judge=judge, labels=y)
    report.update({"sr_factor": module.factor, "sr_seed": seed, "sr_nfe_per_sample": spec.nfe,
                   "sr_seconds": round(seconds, 2), "sr_aug_level": float(aug_level)})
    grid, columns = comparison_grid(x, low_res, samples, module.factor, MAX_EVAL_IMAGES_SHOWN)
    save_grid(grid, run_dir / "super_resolution.png", nrow=columns,
              upscale=max(1, 32 // x.shape[-1]))
    atomic_write_json(report, run_dir / "super_resolution.json")
    return report


def super_resolve(cfg: DictConfig) -> dict:
    """scripts/super_resolve.py: the checkpoint's model and held-out data, any sampler."""
    from diffusion_lab.evaluation import judge_if_labelled
    from diffusion_lab.tasks.build import checkpoint_sampler, module_from_checkpoint
    from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint
    from diffusion_lab.tasks.io import load_checkpoint_file
    from diffusion_lab.tasks.validate import validate_counts, validate_sample_config

    validate_sample_config(cfg)  # finite values, seed, batch_size
    validate_counts(cfg, "eval_images", "samples_per_image")
    check_aug_level(cfg.get("aug_level", 0.0), float("inf"))  # its type and sign, before loading
    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt, path=cfg.ckpt, super_resolution=True).to(cfg.device)
    sampler = checkpoint_sampler(cfg, ckpt, module)
    aug_level = check_aug_level(cfg.get("aug_level", 0.0), module.aug_max)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset_name = ckpt["diffusion_lab_config"]["data"]["name"]
    metrics = cfg.get("metrics", True)
    if cfg.get("input"):  # the data and its judge only for labelled input
        return super_resolve_input(module, cfg, sampler, run_dir, lambda: judge_if_labelled(
            datamodule_from_checkpoint(ckpt), cfg.paths.cache_dir, dataset_name)
            if metrics else None, aug_level=aug_level)
    report = evaluate_super_resolution(
        module, datamodule_from_checkpoint(ckpt), images=cfg.eval_images, samples_per_image=cfg.samples_per_image,
        seed=cfg.seed, run_dir=run_dir, cache_dir=cfg.paths.cache_dir,
        dataset_name=dataset_name, sampler=sampler, batch_size=cfg.batch_size, metrics=metrics,
        aug_level=aug_level)
    report.update({"checkpoint": str(cfg.ckpt), "global_step": ckpt.get("global_step"),
                   "sampler": OmegaConf.select(cfg, "sampler.solver._target_", default=None),
                   "steps": sampler.steps})
    atomic_write_json(report, run_dir / "super_resolution.json")
    print(f"super-resolved {report['sr_images']} images x {report['sr_samples_per_image']} "
          f"({report['sr_nfe_per_sample']} NFE each, {report['sr_seconds']:.1f}s): PSNR bicubic "
          f"{report['sr_psnr_bicubic']:.2f} / mean {report['sr_psnr_mean']:.2f} / sample "
          f"{report['sr_psnr_sample']:.2f} dB -> {run_dir / 'super_resolution.png'}")
    return report


def read_low_res(path, shape: tuple[int, int, int]):
    """(images, labels) of ``input=PATH``: (N, C, h, w) in [-1, 1], and the class of each when
    the file says it (else None). An ``.npz`` whose ``x`` holds them already at the model's low
    resolution (what ``scripts/sample.py`` writes: a base model's samples with their ``labels``,
    the first stage of a cascade), one image file, or a folder of image files (decoded,
    converted to the model's channels, resized and centre-cropped to h x w)."""
    import numpy as np
    import torch

    from diffusion_lab.data.image_folder import COLOR_MODES, image_folder, load_image

    c, h, w = shape
    path = Path(str(path))
    if not path.exists():
        raise ConfigError(f"input: no such file or folder {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise ConfigError(f"input: {path} holds no array 'x' (scripts/sample.py "
                                  "writes one)")
            x = torch.from_numpy(np.asarray(arrays["x"], dtype=np.float32))
            labels = np.asarray(arrays["labels"]) if "labels" in arrays else np.zeros(0)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise ConfigError(f"input: {path} holds images of shape {tuple(x.shape[1:])}; the "
                              f"model super-resolves {c}x{h}x{w} images")
        if len(x) == 0:
            raise ConfigError(f"input: {path} holds no images")
        if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > 1.001:
            raise ConfigError(f"input: {path} holds values outside [-1, 1] (or NaN/inf)")
        labelled = labels.shape == (len(x),) and np.issubdtype(labels.dtype, np.integer)
        return x.clamp(-1, 1), torch.from_numpy(labels).long() if labelled else None
    try:
        if path.is_dir():
            return image_folder(path, image_size=h, channels=c, class_subfolders=False).x, None
        pixels = load_image(path, h, COLOR_MODES[c]).reshape(h, w, c)
    except (OSError, ValueError) as e:
        raise ConfigError(f"input: {e}") from None
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1, None


def super_resolve_input(module, cfg: DictConfig, sampler, run_dir: Path,
                        judge_for=lambda: None, aug_level: float = 0.0) -> dict:
    """``input=PATH``: super-resolve the user's low-resolution images (no truth to score
    against): ``super_resolved.npz`` (``samples`` (K, N, C, H, W), ``low_res``, ``labels``), the
    grid, and the samples' consistency with their input and spread in
    ``super_resolution.json``. Labelled input (a class-conditional base model's samples) is
    also judged as sample.py judges samples, by the high-resolution data's classifier
    (``judge_for()``, built only then): accuracy on the base model's class and FID of the first
    sample of each."""
    import numpy as np

    from diffusion_lab.metrics.fid import (
        FeatureStats,
        bootstrap_fid_sd,
        extract_features,
        fid_from_stats,
    )
    from diffusion_lab.super_resolution.evaluation import (
        comparison_grid,
        consistency_rms,
        super_resolve_all,
    )

    low_res, labels = read_low_res(cfg.input, module.backbone.low_res_shape)
    start = time.perf_counter()
    samples = super_resolve_all(module, low_res, samples_per_image=cfg.samples_per_image,
                                seed=cfg.seed, sampler=sampler, batch_size=cfg.batch_size,
                                aug_level=aug_level,
                                progress=f"super-resolution ({len(low_res)} images x "
                                         f"{cfg.samples_per_image})")
    seconds = time.perf_counter() - start
    np.savez_compressed(run_dir / "super_resolved.npz", samples=samples.numpy(),
                        low_res=low_res.numpy(),
                        labels=np.zeros(0, np.int64) if labels is None else labels.numpy())
    grid, columns = comparison_grid(None, low_res, samples, module.factor, len(low_res))
    save_grid(grid, run_dir / "super_resolution.png", nrow=columns,
              upscale=max(1, 32 // samples.shape[-1]))
    report = {"input": str(cfg.input), "sr_images": len(low_res),
              "sr_samples_per_image": int(cfg.samples_per_image), "sr_factor": module.factor,
              "sr_seed": int(cfg.seed), "sr_nfe_per_sample": sampler.nfe, "steps": sampler.steps,
              "sr_seconds": round(seconds, 2), "checkpoint": str(cfg.ckpt),
              "sr_aug_level": aug_level,
              "sr_consistency_sample": sum(consistency_rms(s, low_res, module.factor)
                                           for s in samples) / len(samples)}
    if len(samples) > 1:
        report["sr_sample_std"] = float(samples.double().std(0).mean())
    judge = judge_for() if labels is not None and len(low_res) >= 2 else None
    if judge is not None:
        features = extract_features(judge.features, samples[0])  # once, for FID and its sd
        report.update({"sample_accuracy": judge.accuracy(samples[0], labels),
                       "fid_classifier": fid_from_stats(FeatureStats.from_features(features),
                                                        judge.real_stats),
                       "fid_classifier_bootstrap_sd": bootstrap_fid_sd(features, judge.real_stats),
                       "sample_count": len(low_res)})
    atomic_write_json(report, run_dir / "super_resolution.json")
    print(f"super-resolved {len(low_res)} images of {cfg.input} x {cfg.samples_per_image} "
          f"({sampler.nfe} NFE each, {seconds:.1f}s) -> {run_dir / 'super_resolved.npz'}")
    return report
