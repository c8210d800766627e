"""sample(cfg): checkpoint -> PNG grid + .npz of samples, with any sampler and guidance scale."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from diffusion_lab.callbacks.sample_grid import grid_labels
from diffusion_lab.tasks.build import build_sampler, module_from_checkpoint
from diffusion_lab.tasks.io import atomic_write_json, load_checkpoint_file
from diffusion_lab.tasks.validate import validate_sampling
from diffusion_lab.utils.images import save_grid
from diffusion_lab.utils.plots import scatter_png


def generate(module, sampler, *, labels, num_samples, seed, batch_size, guidance_scale, use_ema):
    """All samples in batches; sample i always uses the noise of (seed, i)."""
    total = labels.shape[0] if labels is not None else num_samples
    out = []
    for start in range(0, total, batch_size):
        idx = list(range(start, min(total, start + batch_size)))
        out.append(
            module.sample(
                len(idx),
                labels=None if labels is None else labels[idx],
                sampler=sampler,
                guidance_scale=guidance_scale,
                seed=seed,
                indices=idx,
                use_ema=use_ema,
            ).cpu()
        )
    return torch.cat(out)


def sample(cfg: DictConfig) -> dict:
    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt).to(cfg.device)
    validate_sampling(cfg, module.schedule.num_steps)
    sampler = build_sampler(cfg)
    labels = None
    if module.num_classes > 0:
        labels = grid_labels(module.num_classes, cfg.samples_per_class)
    start = time.perf_counter()
    x = generate(
        module, sampler, labels=labels, num_samples=cfg.num_samples, seed=cfg.seed,
        batch_size=cfg.batch_size, guidance_scale=cfg.guidance.scale, use_ema=cfg.use_ema,
    )
    seconds = time.perf_counter() - start
    run_dir = Path(cfg.paths.run_dir)
    np.savez_compressed(
        run_dir / "samples.npz",
        x=x.numpy(),
        labels=(labels.numpy() if labels is not None else np.zeros(0, np.int64)),
    )
    if x.dim() == 2:
        from diffusion_lab.utils.images import save_png

        save_png(scatter_png(x.numpy(), title="samples"), run_dir / "samples.png")
    else:
        nrow = cfg.samples_per_class if labels is not None else math.ceil(math.sqrt(len(x)))
        save_grid(x, run_dir / "samples.png", nrow=nrow, upscale=max(1, 32 // x.shape[-1]))
    info = {
        "checkpoint": str(cfg.ckpt),
        "global_step": ckpt.get("global_step"),
        "num_samples": len(x),
        "nfe_per_sample": sampler.nfe,
        "steps": sampler.steps,
        "guidance_scale": cfg.guidance.scale,
        "seconds": round(seconds, 2),
        "samples": str(run_dir / "samples.npz"),
        "grid": str(run_dir / "samples.png"),
    }
    atomic_write_json(info, run_dir / "sample_info.json")
    print(f"wrote {len(x)} samples to {run_dir} ({info['nfe_per_sample']} NFE each, {seconds:.1f}s)")
    return info
