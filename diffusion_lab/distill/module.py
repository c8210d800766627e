"""The consistency-distillation stage as a DiffusionModule: same backbone, schedule, EMA,
checkpoints, resume and callbacks; a different training step and denoiser.

Training (``consistency.py``): the teacher (a trained checkpoint's EMA weights, guided by
classifier-free guidance at the fixed scale ``teacher_guidance_scale``) takes one ODE step between
neighbouring levels of a Karras grid; the student's consistency function f_theta is pulled
towards the target network's f_theta- (this module's EMA, decay ``module.ema_decay``) there.
The student starts from the teacher's EMA weights. Sampling uses the EMA student's f, with the
guidance baked in: the sampling-time guidance scale is ignored.
"""

from __future__ import annotations

import logging

import torch

from diffusion_lab.discretization import KarrasSpacing
from diffusion_lab.distill.consistency import ConsistencyFunction, consistency_distillation_loss
from diffusion_lab.guidance import drop_labels
from diffusion_lab.lit.module import DiffusionModule
from diffusion_lab.precond import VPDenoiser, clip_denoised

log = logging.getLogger(__name__)

TEACHER_SOLVERS = ("heun", "euler")


class ConsistencyDistillationModule(DiffusionModule):
    def __init__(self, *args, teacher_ckpt: str | None = None, teacher_guidance_scale: float = 1.0,
                 num_levels: int = 18, rho: float = 7.0, sigma_max: float = 80.0,
                 teacher_solver: str = "heun",
                 huber_c: float = 0.03, sigma_data: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(num_levels, bool) or int(num_levels) != num_levels or num_levels < 2:
            raise ValueError(f"distill.num_levels must be an integer >= 2, got {num_levels!r}")
        if teacher_solver not in TEACHER_SOLVERS:
            raise ValueError(f"distill.teacher_solver must be one of {TEACHER_SOLVERS}, got {teacher_solver!r}")
        if not huber_c > 0 or not sigma_data > 0:
            raise ValueError(f"distill.huber_c and distill.sigma_data must be > 0, got {huber_c}, {sigma_data}")
        self.teacher_ckpt = teacher_ckpt
        self.teacher_guidance_scale = self.check_guidance_scale(
            teacher_guidance_scale, "distill.guidance_scale")
        self.teacher_solver, self.huber_c, self.sigma_data = teacher_solver, float(huber_c), float(sigma_data)
        # the distillation grid: N Karras levels from min(sigma_max, the schedule's) down to the
        # schedule's sigma_min, descending, without the final 0 (ConsistencySpacing's range)
        top = min(float(sigma_max), self.schedule.sigma_max)
        if not top > self.schedule.sigma_min:
            raise ValueError(f"distill.sigma_max must exceed the schedule's sigma_min, got {sigma_max}")
        self.levels = KarrasSpacing(rho=rho, sigma_max=top)(self.schedule, int(num_levels))[:-1]
        object.__setattr__(self, "teacher", None)  # not a submodule: never in the student's state

    # ------------------------------------------------------------------ teacher
    def setup(self, stage: str) -> None:
        """Load the teacher and start the student from its EMA weights (a resumed run's
        checkpoint is restored after this, over them)."""
        if stage != "fit" or self.teacher is not None:
            return
        if self.teacher_ckpt is None:
            raise ValueError("distillation needs distill.teacher_ckpt")
        from diffusion_lab.tasks.build import module_from_checkpoint
        from diffusion_lab.tasks.io import load_checkpoint_file

        teacher = module_from_checkpoint(load_checkpoint_file(self.teacher_ckpt), path=self.teacher_ckpt)
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))
        weights = teacher.ema.model.state_dict()
        self.backbone.load_state_dict(weights)
        self.ema.model.load_state_dict(weights)

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)

    def teacher_denoiser(self):
        """The guided teacher D (EMA weights, clipped as it samples)."""
        return self.teacher.denoiser(guidance_scale=self.teacher_guidance_scale)

    # ------------------------------------------------------------------ training
    def _loss(self, x0, y, generator=None, dropout: float = 0.0):
        cond = self._cond(y)
        if cond is not None and dropout > 0:
            cond = drop_labels(cond, dropout, null_class=self.num_classes)
        per_sample, s = consistency_distillation_loss(
            self.consistency_function(self.backbone), self.consistency_function(self.ema.model),
            self.teacher_denoiser(), x0, cond, self.levels, solver=self.teacher_solver,
            huber_c=self.huber_c, generator=generator)
        return per_sample, s

    def training_step(self, batch, batch_idx):
        x0, y = batch
        per_sample, s = self._loss(x0, y, dropout=self.label_dropout)
        loss = per_sample.mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        self._loss_finite = torch.isfinite(loss.detach()) & self._loss_finite
        return {"loss": loss, "per_sample_loss": per_sample.detach(),
                "t": self.schedule.sigma_to_t(s).round().long()}

    def validation_step(self, batch, batch_idx):
        x0, y = batch
        g = torch.Generator(device=x0.device).manual_seed(self._val_generator_seed + batch_idx)
        loss = self._loss(x0, y, generator=g)[0].mean()
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, batch_size=x0.shape[0])
        return loss

    # ------------------------------------------------------------------ sampling
    def consistency_function(self, net) -> ConsistencyFunction:
        """f(x, s, cond) = c_skip x + c_out D_net(x, s, cond), identity at the grid's smallest level."""
        return ConsistencyFunction(VPDenoiser(net, self.schedule, self.prediction),
                                   sigma_min=float(self.levels[-1]), sigma_data=self.sigma_data)

    def denoiser(self, *, use_ema: bool = True, guidance_scale: float | None = None):
        """The student's f (guidance distilled into it: ``guidance_scale`` is ignored)."""
        f = self.consistency_function(self.ema.model if use_ema else self.backbone)
        return clip_denoised(f, -1.0, 1.0) if self.clip_denoised else f
