"""Memorisation on the dashboard: are the model's samples copies of training images?

``num_samples`` unconditional samples (w = 0 with the null class for a class-conditional model)
with fixed per-sample seeds are compared with the training images by the nearest-neighbour copy
test of ``diagnostics.memorization`` (Carlini et al. 2023): a sample is a near-copy when

    d_1 / d_2 < ratio_threshold      (d_1, d_2: distances to the nearest and second-nearest
                                      distinct training images; default 1/3)

in pixel space and, separately, in the data classifier's feature space. Logged:

* scalars ``memorization/copy_share_pixel``, ``memorization/copy_share_feature`` (share of
  near-copies), ``memorization/median_nn_ratio_pixel``/``_feature`` (median d_1/d_2: near 1 for
  a model that generalises, towards 0 as it copies), ``memorization/median_nn_distance_pixel``;
* ``memorization/pairs``: sample / nearest-training-image pairs, the most copy-like first;
* when either copy share exceeds ``warn_share``, a warning in the log and a one-row table
  ``memorization/warning`` on the dashboard.

Needs labelled image data (the classifier's features); otherwise it logs why it skips. EMA
weights; every rank draws its share of the samples, global rank 0 judges and logs.
"""

from __future__ import annotations

import logging

from diffusion_lab.callbacks.unconditional_samples import UnconditionalSampleMetric
from diffusion_lab.diagnostics.memorization import COPY_RATIO
from diffusion_lab.evaluation import SampleJudge
from diffusion_lab.evaluation.inspection import memorization_with_pairs
from diffusion_lab.loggers.media import log_image, log_scalars, log_table
from diffusion_lab.utils.images import make_grid

log = logging.getLogger(__name__)


class Memorization(UnconditionalSampleMetric):
    what = "memorization check"

    def __init__(
        self,
        num_samples: int = 200,
        seed: int = 0,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
        min_step: int = 0,
        ratio_threshold: float = COPY_RATIO,
        warn_share: float = 0.05,
        pairs: int = 16,
        batch_size: int = 500,
        cache_dir: str = ".cache",
        dataset_name: str = "data",
    ):
        if pairs < 1:
            raise ValueError(f"{self.what}: pairs must be >= 1, got {pairs}")
        if not 0 < ratio_threshold <= 1 or not 0 <= warn_share <= 1:
            raise ValueError("ratio_threshold must be in (0, 1] and warn_share in [0, 1]")
        super().__init__(num_samples, seed, every_n_steps, at_train_end, min_step, batch_size)
        self.ratio_threshold, self.warn_share, self.pairs = ratio_threshold, warn_share, pairs
        self.cache_dir, self.dataset_name = cache_dir, dataset_name

    def make(self, trainer, module) -> None:
        x = self.draw(trainer, module)
        if x is None or not trainer.is_global_zero:
            return
        step = trainer.global_step
        dm = trainer.datamodule
        judge = SampleJudge.for_data(dm, self.cache_dir, self.dataset_name)
        train_x = getattr(dm, "pixel_data", dm).train_set.x  # a latent model's samples are decoded
        stats, grid = memorization_with_pairs(judge, x, train_x, self.ratio_threshold, self.pairs)
        png = log_image(trainer, "memorization/pairs",
                        make_grid(grid, nrow=2, upscale=max(1, 32 // x.shape[-1])), step,
                        caption=f"sample | nearest training image, most copy-like first "
                                f"(d1/d2 from {stats['min_nn_ratio_pixel']:.2f}), step {step}")
        scalars = {f"memorization/{k}": float(stats[k]) for k in (
            "copy_share_pixel", "copy_share_feature", "median_nn_ratio_pixel",
            "median_nn_ratio_feature", "median_nn_distance_pixel")}
        log_scalars(trainer, scalars, step)
        worst = max(stats["copy_share_pixel"], stats["copy_share_feature"])
        if worst > self.warn_share:
            message = (f"{stats['copy_share_pixel']:.1%} (pixels) / "
                       f"{stats['copy_share_feature']:.1%} (classifier features) of "
                       f"{len(x)} samples are near-copies of training images (d1/d2 < "
                       f"{self.ratio_threshold:.2f}): the model is memorising")
            log.warning("step %d: %s", step, message)
            log_table(trainer, "memorization/warning", ["step", "warning"], [[step, message]], step)
        self.last = {"step": step, "stats": stats, "warned": worst > self.warn_share,
                     "paths": {"pairs": png}}
