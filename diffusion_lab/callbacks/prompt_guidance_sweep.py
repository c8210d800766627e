"""Prompt guidance sweep: how well a text-to-image model follows its prompts against the
classifier-free guidance scale w (the text-to-image counterpart of ``guidance_sweep``).

For each w in ``scales`` the same prompts (every class with every slant phrase by default) and
the same seeds (sample k of prompt p: the noise of (seed, p K + k) at every w) draw
``samples_per_prompt`` samples, scored as ``text_to_image.evaluation.prompt_adherence``
scores them: slant as asked (with its chance rate), class as named and FID by the data's
classifier. Logged as an adherence-vs-w chart (slant, class, chance), an FID-vs-w chart, a
table (w, slant_adherence, class_accuracy, fid, num_samples, sampler, nfe), scalars
``prompt_guidance_sweep/{slant_adherence,class_accuracy,fid}_w<w>`` and a grid of the same seed
per prompt at every w (rows: prompts, columns: w). EMA weights, global rank 0 only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.evaluation import describe_sampler, judge_if_labelled, sampler_name
from diffusion_lab.guidance import check_guidance_scales
from diffusion_lab.loggers.media import log_image, log_line, log_scalars, log_table
from diffusion_lab.text_to_image.evaluation import (
    default_prompts,
    generate_for_prompts,
    prompt_adherence,
)
from diffusion_lab.utils.images import make_grid
from diffusion_lab.utils.plots import label_columns

log = logging.getLogger(__name__)


class PromptGuidanceSweep(PeriodicMetric):
    def __init__(self, scales: Sequence[float] = (1.0, 2.0, 3.0, 5.0), samples_per_prompt: int = 10,
                 prompts: list[str] | None = None, seed: int = 0,
                 every_n_steps: int | None = None, at_train_end: bool = True, min_step: int = 0,
                 batch_size: int = 500, cache_dir: str = ".cache", dataset_name: str = "data"):
        scales = check_guidance_scales(scales, name="prompt guidance sweep scale")
        if samples_per_prompt < 1 or batch_size < 1:
            raise ValueError("samples_per_prompt and batch_size must be >= 1")
        super().__init__(every_n_steps, at_train_end, min_step)
        self.scales = scales
        self.samples_per_prompt, self.seed, self.batch_size = samples_per_prompt, seed, batch_size
        self.prompts = None if prompts is None else [str(p) for p in prompts]
        self.cache_dir, self.dataset_name = cache_dir, dataset_name

    def make(self, trainer, module) -> None:
        # (no torch.no_grad here: the judge's classifier may be trained on first use)
        if self.too_early(trainer) or not trainer.is_global_zero:
            return
        guided = next((w for w in self.scales if w != 1), 1.0)
        reason = module.guidance_problem(guided)
        if reason:
            log.info("prompt guidance sweep skipped: %s", reason)
            return
        step, start = trainer.global_step, time.perf_counter()
        prompts, k = self.prompts or default_prompts(module.grammar), self.samples_per_prompt
        data = trainer.datamodule
        judge = judge_if_labelled(data, self.cache_dir, self.dataset_name)
        samples, reports = {}, {}
        for w in self.scales:
            samples[w] = generate_for_prompts(module, prompts, samples_per_prompt=k,
                                              seed=self.seed, guidance_scale=w,
                                              batch_size=self.batch_size)
            reports[w] = prompt_adherence(module.grammar, prompts, samples[w], k, judge=judge,
                                          data_images=data.train_set.x,
                                          data_labels=data.train_set.y)
        seconds = time.perf_counter() - start
        spec, n = module.sampler, len(prompts) * k
        columns = ["slant_adherence", "class_accuracy", "fid"]
        keys = {"slant_adherence": "t2i_slant_adherence", "class_accuracy": "t2i_class_accuracy",
                "fid": "fid_classifier"}
        rows = [[w, *[r.get(keys[c]) for c in columns], n, sampler_name(spec),
                 spec.nfe * (1 if w in (0, 1) else 2)] for w, r in reports.items()]
        table = log_table(trainer, "prompt_guidance_sweep/table",
                          ["w", *columns, "num_samples", "sampler", "nfe"], rows, step)
        what = f"{n} samples per w ({len(prompts)} prompts x {k}), {describe_sampler(spec)}"
        series = {"slant as asked": [r.get("t2i_slant_adherence") for r in reports.values()],
                  "chance (slant ignored)": [r.get("t2i_slant_chance") for r in reports.values()]}
        if judge is not None:
            series["class as named"] = [r["t2i_class_accuracy"] for r in reports.values()]
        series = {name: ys for name, ys in series.items() if None not in ys}
        ws = list(reports)
        adherence_png = log_line(trainer, "prompt_guidance_sweep/adherence_vs_w", ws, series,
                                 step, "w", "fraction of samples",
                                 title=f"prompt adherence vs guidance w, step {step}\n{what}")
        fid_png = None
        if judge is not None:
            fid_png = log_line(trainer, "prompt_guidance_sweep/fid_vs_w", ws,
                               {"FID (classifier features)": [r["fid_classifier"]
                                                              for r in reports.values()]},
                               step, "w", "FID", title=f"FID vs guidance w, step {step}\n{what}")
        scalars = {f"prompt_guidance_sweep/{c}_w{row[0]:g}": v for row in rows
                   for c, v in zip(columns, row[1:4]) if v is not None}
        log_scalars(trainer, scalars, step)
        log_image(trainer, "prompt_guidance_sweep/samples", self._same_seed_grid(samples), step,
                  caption=f"the first sample of each prompt (rows: {'; '.join(prompts[:3])}; ...) "
                          f"at w = {', '.join(f'{w:g}' for w in ws)} (columns), step {step}")
        log.info("prompt guidance sweep at step %d: %s (%.1fs)", step, ", ".join(
            f"w={row[0]:g}: slant {row[1]:.3f}" for row in rows if row[1] is not None), seconds)
        self.last = {"step": step, "rows": rows, "num_samples": n, "seconds": seconds,
                     "paths": {"table": table, "adherence": adherence_png, "fid": fid_png}}

    def _same_seed_grid(self, samples: dict):
        xs = [x[:: self.samples_per_prompt] for x in samples.values()]  # (P, C, H, W) each
        tiles = torch.stack(xs, dim=1).flatten(0, 1)  # (P * len(w), C, H, W), row-major
        upscale = max(1, 32 // tiles.shape[-1])
        grid = make_grid(tiles, nrow=len(xs), upscale=upscale)
        return label_columns(grid, [f"w={w:g}" for w in samples], tiles.shape[-1] * upscale)
