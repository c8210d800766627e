"""sample(cfg): checkpoint -> PNG grid + .npz of samples, with any sampler and guidance scale."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from diffusion_lab.evaluation import SampleJudge, grid_labels, sampler_name
from diffusion_lab.lit.generate import generate
from diffusion_lab.tasks.build import (
    adopt_checkpoint_schedule,
    build_sampler,
    module_from_checkpoint,
)
from diffusion_lab.tasks.guidance_setup import configure_guidance, guidance_options
from diffusion_lab.tasks.io import atomic_write_json, load_checkpoint_file
from diffusion_lab.tasks.schedule_check import check_schedule_agreement
from diffusion_lab.tasks.validate import validate_sample_config, validate_sampling
from diffusion_lab.utils.images import save_grid
from diffusion_lab.utils.plots import scatter_png
from diffusion_lab.utils.plots2d import reference_limits


def sample(cfg: DictConfig) -> dict:
    validate_sample_config(cfg)
    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt, path=cfg.ckpt, autoencoder=cfg.get("autoencoder_path"),
                                    latent_scale=cfg.get("latent_scale")).to(cfg.device)
    check_schedule_agreement(cfg, ckpt, module.schedule, cfg.ckpt)
    adopt_checkpoint_schedule(cfg, ckpt)
    configure_guidance(module, cfg.guidance, cfg.device)
    validate_sampling(cfg, module.schedule, module)
    points = len(module.sample_shape) == 1  # 2-D data: num_points samples, split over classes
    num_points = cfg.num_points if points else 0
    sampler = build_sampler(cfg, module.schedule)
    labels = None
    # class-conditional models, and unconditional ones steered by a classifier: every class
    classes = module.num_classes or (module.classifier_classes if module.classifier_guidance else 0)
    if classes > 0:
        per_class = math.ceil(num_points / classes) if points else cfg.samples_per_class
        labels = grid_labels(classes, per_class)
    start = time.perf_counter()
    x = generate(
        module, sampler, labels=labels, num_samples=num_points or cfg.num_samples, seed=cfg.seed,
        batch_size=cfg.batch_size, guidance_scale=cfg.guidance.scale, use_ema=cfg.use_ema,
        progress=f"sampling ({sampler.steps} steps)",
    )
    seconds = time.perf_counter() - start
    run_dir = Path(cfg.paths.run_dir)
    np.savez_compressed(
        run_dir / "samples.npz",
        x=x.numpy(),
        labels=(labels.numpy() if labels is not None else np.zeros(0, np.int64)),
    )
    if x.dim() == 2:
        from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint
        from diffusion_lab.utils.images import save_png

        limits = reference_limits(datamodule_from_checkpoint(ckpt))
        save_png(scatter_png(x.numpy(), title=f"{len(x)} samples",
                             labels=None if labels is None else labels.numpy(), limits=limits),
                 run_dir / "samples.png")
    else:
        nrow = cfg.samples_per_class if labels is not None else math.ceil(math.sqrt(len(x)))
        save_grid(x, run_dir / "samples.png", nrow=nrow, upscale=max(1, 32 // x.shape[-1]))
    info = {
        "checkpoint": str(cfg.ckpt),
        "global_step": ckpt.get("global_step"),
        "num_samples": len(x),
        "nfe_per_sample": sampler.nfe,
        "steps": sampler.steps,
        "sampler": sampler_name(sampler),
        "spacing": type(sampler.spacing).__name__,
        "guidance_scale": cfg.guidance.scale,
        **guidance_options(cfg.guidance),
        "seconds": round(seconds, 2),
        "samples": str(run_dir / "samples.npz"),
        "grid": str(run_dir / "samples.png"),
    }
    if cfg.get("metrics") and x.dim() == 4 and len(x) < 2:
        info["metrics_skipped"] = "FID and KID need at least 2 samples"
    elif cfg.get("metrics") and x.dim() == 4:
        from diffusion_lab.evaluation import why_not_judgeable
        from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint

        data_name = ckpt["diffusion_lab_config"]["data"]["name"]
        datamodule = datamodule_from_checkpoint(ckpt)
        if labels is not None:
            judge = SampleJudge.for_data(datamodule, cfg.paths.cache_dir, data_name)
            info.update(judge(x, labels, cfg.guidance.scale))
        elif not why_not_judgeable(getattr(datamodule, "pixel_data", datamodule)):
            # an unconditional model's samples: FID, Inception Score, class coverage
            judge = SampleJudge.for_data(datamodule, cfg.paths.cache_dir, data_name)
            scores = judge.unconditional(x)
            scores.pop("data_class_fractions")
            info.update(scores)
    atomic_write_json(info, run_dir / "sample_info.json")
    print(f"wrote {len(x)} samples to {run_dir} ({info['nfe_per_sample']} NFE each, {seconds:.1f}s)")
    return info
