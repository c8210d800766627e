"""The denoising training objective (Ho et al. 2020, "L_simple", with a target and a weighting).

    t ~ U{0, .., T-1},  noise ~ N(0, I),  x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise,
    L = E_t [ w(SNR_t) * mean_{non-batch dims} (backbone(x_t, t, cond) - target)^2 ],

target = noise / x0 / v (or the flow velocity) from the prediction class, w from the weighting,
t from the timestep sampler (:mod:`diffusion_lab.timestep_sampling`; default U{0..T-1}) and
(alpha_t, sigma_t) from the schedule or path (``schedule.coefficients``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from diffusion_lab.parametrization import check_fits_schedule
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.timestep_sampling import UniformIntegerTimesteps
from diffusion_lab.types import append_dims
from diffusion_lab.weighting import UniformWeighting

__all__ = ["DenoisingObjective", "LossOutput"]


@dataclass
class LossOutput:
    """``loss`` (scalar), weighted ``per_sample_loss`` (B,) float32, the sampled ``t`` (B,) (long;
    float64 on a continuous-time path)."""

    loss: Tensor
    per_sample_loss: Tensor
    t: Tensor


class DenoisingObjective:
    """Weighted regression of the prediction target; the backbone is an argument, called as
    ``backbone(x_t, t.float(), cond)`` with float timesteps in [0, T)."""

    def __init__(
        self, schedule: NoiseSchedule, prediction: object, weighting: object | None = None,
        timesteps: object | None = None,
    ):
        check_fits_schedule(prediction, schedule)
        self.schedule = schedule
        self.prediction = prediction
        self.weighting = UniformWeighting() if weighting is None else weighting
        self.timesteps = UniformIntegerTimesteps() if timesteps is None else timesteps

    def sample_t(
        self,
        batch: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """t from the timestep sampler, shape (batch,), drawn on the generator's device then moved."""
        return self.timesteps(batch, self.schedule, device, generator)

    def __call__(
        self,
        backbone: Callable[[Tensor, Tensor, Tensor | None], Tensor],
        x0: Tensor,
        cond: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        batch = x0.shape[0]
        t = self.sample_t(batch, x0.device, generator)
        draw_device = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype).to(
            x0.device
        )
        x_t = self.schedule.q_sample(x0, t, noise)
        alpha, sigma = self.schedule.coefficients(t)
        alpha = append_dims(alpha, x0.ndim).to(x0.device, torch.float32)
        sigma = append_dims(sigma, x0.ndim).to(x0.device, torch.float32)
        target = self.prediction.target(x0.float(), noise.float(), alpha, sigma)
        out = backbone(x_t, t.float(), cond)
        if out.shape != x0.shape:
            raise ValueError(
                f"backbone returned shape {tuple(out.shape)}, expected {tuple(x0.shape)}"
            )
        weight = self.weighting(self.schedule.snr_at(t), self.prediction).to(
            x0.device, torch.float32
        )
        mse = (out.float() - target).pow(2).flatten(1).mean(dim=1)
        per_sample = weight * mse
        return LossOutput(loss=per_sample.mean(), per_sample_loss=per_sample, t=t)

    def __repr__(self) -> str:
        return (f"DenoisingObjective({self.schedule!r}, {self.prediction!r}, {self.weighting!r}, "
                f"{self.timesteps!r})")
