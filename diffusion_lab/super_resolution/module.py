"""The Lightning module of super-resolution diffusion: DiffusionModule with the low-resolution
image as the condition.

Training step (SR3): y = A x0 (``degradation.downsample``), t ~ U{0..T-1}, eps ~ N(0, I),
x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, loss = w(snr_t) ||target - f(x_t, t, y)||^2 with the
backbone a :class:`~diffusion_lab.backbones.LowResConditioned`. Everything else (objectives,
EMA, schedules, samplers, checkpoints, resume) is the diffusion module's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffusion_lab.lit.module import DiffusionModule
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.super_resolution.degradation import check_factor, downsample


class SuperResolutionModule(DiffusionModule):
    def __init__(self, *, factor: int, **kwargs) -> None:
        super().__init__(**kwargs)
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
        return self.low_res(x0)

    def model_facts(self) -> dict:
        """The diffusion model's facts and the task's: the same weights trained for another
        factor or upsampling would load without a shape error and answer the wrong question."""
        return {**super().model_facts(), "super_resolution_factor": self.factor,
                "super_resolution_upsample": self.backbone.upsample}

    def sample(self, *args, **kwargs):
        raise ValueError("a super-resolution model samples a high-resolution image for a "
                         "low-resolution one: call super_resolve(low_res) "
                         "(scripts/super_resolve.py)")

    @torch.no_grad()
    def super_resolve(self, low_res: torch.Tensor, *, sampler: SamplerSpec | None = None,
                      seed: int = 0, indices: Sequence[int] | None = None, use_ema: bool = True,
                      callback=None) -> torch.Tensor:
        """Samples x ~ p(x | y) for each y in ``low_res`` (B, C, H/f, W/f); sample ``indices[b]``
        (default range(B)) depends only on (seed, index), whatever the batch."""
        low_res = low_res.to(self.device, torch.float32)
        spec = self.sampler_or_default(sampler)
        was_training = self.training
        self.eval()
        try:
            return spec.sample(self.denoiser(use_ema=use_ema), self.schedule,
                               (low_res.shape[0], *self.sample_shape), cond=low_res, seed=seed,
                               indices=indices, callback=callback, device=self.device)
        finally:
            self.train(was_training)
