"""What the unconditional-sample panels (mode coverage, memorisation) share: the skip with a
reason and the draw of ``num_samples`` unconditional samples with fixed per-sample seeds
(w = 0 with the null class for a class-conditional model, plain samples otherwise).

Sample i depends only on (seed, i) and the weights, so panels that run at the same step with the
same seed share one draw: the last draw is kept on the module, keyed by (global step, seed), and
a panel asking for at most as many samples takes its first ``num_samples`` instead of sampling
again."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.evaluation import generate_samples, why_not_judgeable

log = logging.getLogger(__name__)

_CACHE_ATTR = "_unconditional_sample_draw"


class UnconditionalSampleMetric(PeriodicMetric):
    """``draw(trainer, module)``: the samples, or None (and one log line, once) when the data
    cannot be judged or the model cannot sample at w = 0, or before ``min_step``. Every rank
    calls it and draws its share under DDP; ``what`` names the panel in the skip line."""

    what = "panel"
    min_samples = 1  # the fewest samples the panel's statistic is defined for

    def __init__(self, num_samples: int, seed: int, every_n_steps: int | None,
                 at_train_end: bool, min_step: int, batch_size: int) -> None:
        if num_samples < self.min_samples or batch_size < 1:
            raise ValueError(f"{self.what}: num_samples must be >= {self.min_samples} and "
                             f"batch_size >= 1, got {num_samples} and {batch_size}")
        super().__init__(every_n_steps, at_train_end, min_step)
        self.num_samples, self.seed, self.batch_size = num_samples, seed, batch_size
        self._skip_logged = False

    @torch.no_grad()
    def draw(self, trainer, module) -> Tensor | None:
        if self.too_early(trainer):
            return None
        reason = why_not_judgeable(trainer.datamodule) or (
            module.guidance_problem(0.0) if module.num_classes > 0 else "")
        if reason:
            if not self._skip_logged and trainer.is_global_zero:
                log.info("%s skipped: %s", self.what, reason)
                self._skip_logged = True
            return None
        key = (trainer.global_step, self.seed)
        cached = module.__dict__.get(_CACHE_ATTR)
        if cached is not None and cached[0] == key and len(cached[1]) >= self.num_samples:
            return cached[1][: self.num_samples]
        samples = generate_samples(module, None, self.num_samples, seed=self.seed,
                                   guidance_scale=None, batch_size=self.batch_size)
        # A plain attribute (not a buffer): never saved in a checkpoint, replaced by the next draw.
        object.__setattr__(module, _CACHE_ATTR, (key, samples))
        return samples
