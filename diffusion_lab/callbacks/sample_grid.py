"""Sample grids from the EMA weights with fixed per-sample seeds.

The same seeds every time make grids comparable across steps and across runs;
class-conditional models get one row per class. 2-D data gets a scatter plot of ``num_points``
samples (split evenly over the classes, coloured by class): a distribution is judged from
about a thousand points, not from a grid's twenty.
"""

from __future__ import annotations

import math

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.evaluation import grid_labels
from diffusion_lab.loggers.media import log_image
from diffusion_lab.utils.images import make_grid
from diffusion_lab.utils.plots import scatter_png
from diffusion_lab.utils.plots2d import reference_limits


class SampleGrid(PeriodicMetric):
    def __init__(
        self,
        every_n_steps: int = 1000,
        samples_per_class: int = 10,
        num_samples: int = 64,
        seed: int = 0,
        guidance_scale: float | None = None,
        num_points: int = 1000,
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        super().__init__(every_n_steps, at_train_end=True, min_step=0)
        self.samples_per_class = samples_per_class
        self.num_samples = num_samples
        self.seed = seed
        self.guidance_scale = guidance_scale
        self.num_points = num_points
        self.last_path = None

    @torch.no_grad()
    def make(self, trainer, module) -> None:
        if not trainer.is_global_zero:  # one grid per run, written by rank 0
            return
        step = trainer.global_step
        points = len(module.sample_shape) == 1
        labels = None
        if module.num_classes > 0:
            per_class = (math.ceil(self.num_points / module.num_classes) if points
                         else self.samples_per_class)
            labels = grid_labels(module.num_classes, per_class)
            x = module.sample(labels=labels, guidance_scale=self.guidance_scale, seed=self.seed)
            nrow = self.samples_per_class
        else:
            x = module.sample(self.num_points if points else self.num_samples, seed=self.seed)
            nrow = math.ceil(math.sqrt(self.num_samples))
        if points:
            image = scatter_png(x.cpu().numpy(), title=f"{len(x)} samples, step {step}",
                                labels=None if labels is None else labels.numpy(),
                                limits=reference_limits(getattr(trainer, "datamodule", None)))
        else:
            image = make_grid(x, nrow=nrow, upscale=max(1, 32 // x.shape[-1]))
        self.last_path = log_image(trainer, "samples/grid", image, step, caption=f"step {step}")
