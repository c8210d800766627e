"""Samples for fixed prompts from the EMA weights, with fixed per-sample seeds: one row per
prompt (every class with every slant phrase by default), and the slant adherence of the grid's
samples beside it. A model that ignores its prompt (rows alike), follows the class but not the
slant, or collapses under guidance is seen here first."""

from __future__ import annotations

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.loggers.media import log_image, log_scalars
from diffusion_lab.text_to_image.evaluation import (
    default_prompts,
    generate_for_prompts,
    prompt_adherence,
    prompt_grid,
)
from diffusion_lab.utils.images import make_grid


class PromptGrid(PeriodicMetric):
    def __init__(self, every_n_steps: int = 500, prompts: list[str] | None = None,
                 samples_per_prompt: int = 4, guidance_scale: float | None = None,
                 seed: int = 0) -> None:
        if every_n_steps < 1 or samples_per_prompt < 1:
            raise ValueError("every_n_steps and samples_per_prompt must be >= 1")
        super().__init__(every_n_steps, at_train_end=True, min_step=0)
        self.prompts = None if prompts is None else [str(p) for p in prompts]
        self.samples_per_prompt, self.guidance_scale, self.seed = \
            samples_per_prompt, guidance_scale, seed
        self.last_path = None

    @torch.no_grad()
    def make(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        prompts = self.prompts or default_prompts(module.grammar)
        samples = generate_for_prompts(module, prompts, samples_per_prompt=self.samples_per_prompt,
                                       seed=self.seed, guidance_scale=self.guidance_scale)
        adherence = prompt_adherence(module.grammar, prompts, samples,
                                     self.samples_per_prompt).get("t2i_slant_adherence")
        images, columns = prompt_grid(samples, self.samples_per_prompt, self.samples_per_prompt)
        step = trainer.global_step
        self.last_path = log_image(
            trainer, "text_to_image/grid",
            make_grid(images, nrow=columns, upscale=max(1, 32 // samples.shape[-1])), step,
            caption=f"step {step}: one row per prompt ({'; '.join(prompts[:3])}; ...)")
        if adherence is not None:
            log_scalars(trainer, {"text_to_image/slant_adherence": adherence}, step)
        self.last = {"step": step, "path": None if self.last_path is None else str(self.last_path),
                     "slant_adherence": adherence}
