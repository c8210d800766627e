"""Super-resolution of fixed held-out images from the EMA weights, with fixed per-sample seeds:
per row the low-resolution image (as blocks), bicubic interpolation, the mean of the samples,
the samples and the truth. Blurry samples, samples that ignore the low-resolution image, or
samples all alike (no posterior spread) are seen here first."""

from __future__ import annotations

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.loggers.media import log_image
from diffusion_lab.super_resolution.evaluation import (
    comparison_grid,
    heldout_images,
    super_resolve_all,
)
from diffusion_lab.utils.images import make_grid


class SuperResolutionGrid(PeriodicMetric):
    def __init__(self, every_n_steps: int = 500, num_images: int = 8, samples_per_image: int = 3,
                 seed: int = 0) -> None:
        if every_n_steps < 1 or num_images < 1 or samples_per_image < 1:
            raise ValueError("every_n_steps, num_images and samples_per_image must be >= 1")
        super().__init__(every_n_steps, at_train_end=True, min_step=0)
        self.num_images, self.samples_per_image, self.seed = num_images, samples_per_image, seed
        self.last_path = None

    @torch.no_grad()
    def make(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        x, _ = heldout_images(trainer.datamodule, self.num_images)
        x = x.to(module.device)
        low_res = module.low_res(x)
        samples = super_resolve_all(module, low_res, samples_per_image=self.samples_per_image,
                                    seed=self.seed)
        images, columns = comparison_grid(x.cpu(), low_res.cpu(), samples, module.factor,
                                          self.num_images, self.samples_per_image)
        step = trainer.global_step
        self.last_path = log_image(
            trainer, "super_resolution/grid",
            make_grid(images, nrow=columns, upscale=max(1, 32 // x.shape[-1])), step,
            caption=f"step {step}: low-res | bicubic | mean | samples | truth")
        self.last = {"step": step, "path": None if self.last_path is None else str(self.last_path)}
