"""A distilled student beside its teacher from the same noise: one grid whose rows are the
guided teacher (its own sampler) and the student at each of ``steps`` (1, 2, 4) consistency
steps; column j is sample j (class j mod num_classes) in every row, drawn from the same x_T.
Written to media/few_step/grid/step<N>.png (and the run's logger) every ``every_n_steps``
and at the end of training."""

from __future__ import annotations

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.evaluation import grid_labels
from diffusion_lab.loggers.media import log_image
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers.consistency_sampling import ConsistencySpacing, consistency
from diffusion_lab.utils.images import make_grid


class FewStepGrid(PeriodicMetric):
    def __init__(self, every_n_steps: int = 200, steps=(1, 2, 4), samples_per_class: int = 4,
                 seed: int = 0):
        steps = [int(s) for s in steps]
        if every_n_steps < 1 or not steps or min(steps) < 1 or samples_per_class < 1:
            raise ValueError("few_step_grid: every_n_steps, steps and samples_per_class must be >= 1")
        super().__init__(int(every_n_steps), at_train_end=True, min_step=0)
        self.steps = steps
        self.samples_per_class, self.seed = int(samples_per_class), int(seed)
        self.last_path = None

    @torch.no_grad()
    def make(self, trainer, module) -> None:
        teacher = getattr(module, "teacher", None)
        if not trainer.is_global_zero or teacher is None or len(module.sample_shape) != 3:
            return
        labels = None
        n = self.samples_per_class
        if module.num_classes > 0:
            labels = grid_labels(module.num_classes, n).reshape(module.num_classes, n).T.reshape(-1)
        count = None if labels is not None else n * 10
        spacing = getattr(module.sampler, "spacing", None)
        spacing = spacing if isinstance(spacing, ConsistencySpacing) else ConsistencySpacing()
        rows = [teacher.to(module.device).sample(count, labels=labels, seed=self.seed,
                                                 guidance_scale=module.teacher_guidance_scale)]
        rows += [module.sample(count, labels=labels, seed=self.seed,
                               sampler=SamplerSpec(consistency, spacing, k)) for k in self.steps]
        x = torch.cat([r.cpu() for r in rows])
        image = make_grid(x, nrow=len(rows[0]), upscale=max(1, 32 // x.shape[-1]))
        step = trainer.global_step
        caption = (f"step {step}: rows = teacher ({teacher.sampler.nfe} NFE, w = "
                   f"{module.teacher_guidance_scale:g}), student at {', '.join(map(str, self.steps))} steps")
        self.last_path = log_image(trainer, "few_step/grid", image, step, caption=caption)
