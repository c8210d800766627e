"""Guidance sweep: FID and classifier accuracy against the classifier-free guidance scale w.

For each w in ``scales`` the same seeds draw ``samples_per_class`` samples of every class
(sample i of the sweep uses the noise of (seed, i) at every w, exactly as the end-of-run
evaluation does), then

* accuracy: the fraction the project's data classifier assigns to the class asked for;
* FID: Fréchet distance to the real training images in that classifier's feature space
  (reference statistics cached beside the classifier, shared with the evaluation).

Logged as FID-vs-w and accuracy-vs-w charts whose titles state the sample count and the
sampler/NFE, a table (w, fid, accuracy, num_samples, sampler, nfe), scalars
``guidance_sweep/{fid,accuracy}_w<w>``, and a grid of the same seed per class at every w
(rows: classes, columns: w). Needs a class-conditional model and labelled image data;
otherwise it logs why it skips. EMA weights, global rank 0 only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.evaluation import (
    SampleJudge,
    describe_sampler,
    generate_samples,
    grid_labels,
    sampler_name,
    why_not_judgeable,
)
from diffusion_lab.guidance import check_guidance_scales
from diffusion_lab.lit.generate import process_group_size
from diffusion_lab.loggers.media import log_image, log_line, log_scalars, log_table
from diffusion_lab.utils.images import make_grid
from diffusion_lab.utils.plots import label_columns

log = logging.getLogger(__name__)


class GuidanceSweep(PeriodicMetric):
    def __init__(
        self,
        scales: Sequence[float] = (1.0, 2.0, 3.0, 5.0, 7.0),
        samples_per_class: int = 20,
        seed: int = 0,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
        min_step: int = 0,
        batch_size: int = 500,
        cache_dir: str = ".cache",
        dataset_name: str = "data",
    ):
        scales = check_guidance_scales(scales, name="guidance sweep scale")
        if samples_per_class < 1 or batch_size < 1:
            raise ValueError("samples_per_class and batch_size must be >= 1")
        super().__init__(every_n_steps, at_train_end, min_step)
        self.scales = scales
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.dataset_name = dataset_name
        self._skip_logged = False

    def _skip(self, reason: str) -> None:
        if not self._skip_logged and process_group_size()[0] == 0:
            log.info("guidance sweep skipped: %s", reason)
            self._skip_logged = True

    @torch.no_grad()
    def samples(self, module) -> dict:
        """{w: samples} for the configured scales (every rank calls it under DDP)."""
        labels = grid_labels(module.num_classes, self.samples_per_class)
        return {w: generate_samples(module, labels, len(labels), seed=self.seed,
                                    guidance_scale=w, batch_size=self.batch_size)
                for w in self.scales}

    def make(self, trainer, module) -> None:
        # Every rank takes the same branch (step and data are the same everywhere) and draws
        # its share of the samples; rank 0 alone judges and logs.
        if self.too_early(trainer):
            return
        guided = next((w for w in self.scales if w != 1), 1.0)
        reason = why_not_judgeable(trainer.datamodule, module) or module.guidance_problem(guided)
        if reason:
            self._skip(reason)
            return
        step, start = trainer.global_step, time.perf_counter()
        samples = self.samples(module)
        if not trainer.is_global_zero:
            return
        judge = SampleJudge.for_data(trainer.datamodule, self.cache_dir, self.dataset_name)
        results = judge.sweep(samples, grid_labels(module.num_classes, self.samples_per_class))
        seconds = time.perf_counter() - start
        n = module.num_classes * self.samples_per_class
        spec = module.sampler
        rows = [[w, fid, acc, n, sampler_name(spec), spec.nfe]
                for w, (acc, fid, _) in results.items()]
        table = log_table(trainer, "guidance_sweep/table",
                          ["w", "fid", "accuracy", "num_samples", "sampler", "nfe"], rows, step)
        what = f"{n} samples per w ({self.samples_per_class}/class), {describe_sampler(spec)}"
        ws = list(results)
        fid_png = log_line(trainer, "guidance_sweep/fid_vs_w", ws,
                           {"FID (classifier features)": [r[1] for r in results.values()]},
                           step, "w", "FID", title=f"FID vs guidance w, step {step}\n{what}")
        acc_png = log_line(trainer, "guidance_sweep/accuracy_vs_w", ws,
                           {"accuracy": [r[0] for r in results.values()]}, step, "w",
                           "classifier accuracy", title=f"accuracy vs guidance w, step {step}\n{what}")
        scalars = {f"guidance_sweep/fid_w{w:g}": fid for w, (_, fid, _) in results.items()}
        scalars.update({f"guidance_sweep/accuracy_w{w:g}": a for w, (a, _, _) in results.items()})
        scalars["guidance_sweep/num_samples"] = n
        log_scalars(trainer, scalars, step)
        log_image(trainer, "guidance_sweep/samples", self._same_seed_grid(results), step,
                  caption=f"same seed per class (rows) at w = {', '.join(f'{w:g}' for w in ws)}"
                          f" (columns); {describe_sampler(spec)}, step {step}")
        log.info("guidance sweep at step %d: %s (%.1fs)", step,
                 ", ".join(f"w={w:g}: acc {a:.3f} fid {f:.2f}" for w, (a, f, _) in results.items()),
                 seconds)
        self.last = {"step": step, "rows": rows, "num_samples": n, "seconds": seconds,
                     "paths": {"table": table, "fid": fid_png, "accuracy": acc_png}}

    def _same_seed_grid(self, results: dict):
        """Row c: the first sample of class c (same seed) at every w, one column per w."""
        xs = [x[:: self.samples_per_class] for _, _, x in results.values()]  # (K, C, H, W) each
        tiles = torch.stack(xs, dim=1).flatten(0, 1)  # (K * len(w), C, H, W), row-major
        upscale = max(1, 32 // tiles.shape[-1])
        grid = make_grid(tiles, nrow=len(xs), upscale=upscale)
        return label_columns(grid, [f"w={w:g}" for w in results], tiles.shape[-1] * upscale)
