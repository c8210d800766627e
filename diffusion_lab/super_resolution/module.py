"""The Lightning module of super-resolution diffusion: DiffusionModule with the low-resolution
image as the condition.

Training step (SR3): y = A x0 (``degradation.downsample``), t ~ U{0..T-1}, eps ~ N(0, I),
x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, loss = w(snr_t) ||target - f(x_t, t, y)||^2 with the
backbone a :class:`~diffusion_lab.backbones.LowResConditioned`. With noise-conditioning
augmentation (``aug_max`` = s_max > 0, Ho et al. 2022) the condition is (y_s, s) instead,
y_s = y + s e, s ~ U[0, s_max] and e ~ N(0, I) per image. Everything else (objectives, EMA,
schedules, samplers, checkpoints, resume) is the diffusion module's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffusion_lab.backbones.low_res_conditioned import LowResConditioned
from diffusion_lab.lit.module import DiffusionModule
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.super_resolution.degradation import augment, check_factor, downsample


class SuperResolutionModule(DiffusionModule):
    def __init__(self, *, factor: int, aug_max: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= aug_max < float("inf"):
            raise ValueError(f"aug_max must be a finite number >= 0, got {aug_max!r}")
        if getattr(self.backbone, "level_channel", False) != (aug_max > 0):
            raise ValueError("the backbone must have a noise-level channel exactly when "
                             "aug_max > 0")
        self.aug_max = float(aug_max)
        if self.num_classes:
            raise ValueError("a super-resolution model is conditioned on the low-resolution "
                             "image, not on classes: set backbone.num_classes=0")
        if getattr(self.backbone, "factor", None) != factor:
            raise ValueError(f"the backbone must be a LowResConditioned of factor {factor}")
        self.factor = check_factor(self.backbone.image_size, factor)

    def low_res(self, x0: torch.Tensor) -> torch.Tensor:
        """y = A x0, the image the model is conditioned on."""
        return downsample(x0, self.factor)

    def condition(self, x0: torch.Tensor, y: torch.Tensor, training: bool) -> torch.Tensor:
        """y = A x0, or with augmentation (y + s e, s) for s ~ U[0, aug_max] per image."""
        low_res = self.low_res(x0)
        if not self.aug_max:
            return low_res
        level = torch.rand(low_res.shape[0], device=low_res.device) * self.aug_max
        # built directly (no checks): no host sync in the training step
        return LowResConditioned.condition(augment(low_res, level, torch.randn_like(low_res)),
                                           level)

    def low_res_condition(self, low_res: torch.Tensor, level: float = 0.0,
                          noise: torch.Tensor | None = None) -> torch.Tensor:
        """The network's condition for ``low_res`` augmented at ``level`` s (one number for all
        images) with ``noise`` e: y_s = y + s e and s (models trained with augmentation), y
        itself otherwise (s must then be 0)."""
        if not self.aug_max:
            if level != 0:
                raise ValueError("this model was trained without noise-conditioning "
                                 "augmentation (super_resolution.aug_max=0): aug_level must be 0")
            return low_res
        if level > 0 and noise is None:
            raise ValueError("an augmentation level > 0 needs its noise")
        levels = torch.full((low_res.shape[0],), float(level), dtype=low_res.dtype,
                            device=low_res.device)
        noisy = low_res if noise is None else augment(low_res, levels, noise.to(low_res.device))
        return LowResConditioned.condition(noisy, levels)

    def model_facts(self) -> dict:
        """The diffusion model's facts and the task's: the same weights trained for another
        factor, upsampling or augmentation range would load without a shape error and answer the
        wrong question."""
        return {**super().model_facts(), "super_resolution_factor": self.factor,
                "super_resolution_upsample": self.backbone.upsample,
                "super_resolution_aug_max": self.aug_max}

    def sample(self, *args, **kwargs):
        raise ValueError("a super-resolution model samples a high-resolution image for a "
                         "low-resolution one: call super_resolve(low_res) "
                         "(scripts/super_resolve.py)")

    @torch.no_grad()
    def super_resolve(self, low_res: torch.Tensor, *, sampler: SamplerSpec | None = None,
                      seed: int = 0, indices: Sequence[int] | None = None, use_ema: bool = True,
                      callback=None, aug_level: float = 0.0,
                      aug_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Samples x ~ p(x | y) for each y in ``low_res`` (B, C, H/f, W/f); sample ``indices[b]``
        (default range(B)) depends only on (seed, index), whatever the batch. A model trained
        with augmentation is conditioned on (y + s e, s) for s = ``aug_level`` and
        e = ``aug_noise`` (shaped like ``low_res``; needed when s > 0)."""
        low_res = low_res.to(self.device, torch.float32)
        cond = self.low_res_condition(low_res, float(aug_level), aug_noise)
        spec = self.sampler_or_default(sampler)
        was_training = self.training
        self.eval()
        try:
            return spec.sample(self.denoiser(use_ema=use_ema), self.schedule,
                               (low_res.shape[0], *self.sample_shape), cond=cond, seed=seed,
                               indices=indices, callback=callback, device=self.device)
        finally:
            self.train(was_training)
