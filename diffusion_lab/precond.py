"""Wrap a VP-trained backbone as a sigma-space denoiser D(x, sigma, cond) -> x0_hat.

In sigma space x = x0 + sigma * eps. The VP sample at the same noise level is x_vp = alpha x, with
alpha = 1/sqrt(1 + sigma^2) and sigma_vp = sigma/sqrt(1 + sigma^2) (so ab = alpha^2); the training
timestep is t = schedule.sigma_to_t(sigma). Other paths (``diffusion_lab.paths``) give their own
(alpha, sigma_path) through ``schedule.sigma_space_coefficients`` (linear path: x_t = x/(1 + sigma)). eps is shared by both views, so the backbone output
converts to x0 (and eps) with the VP formulas of the prediction class.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffusion_lab.parametrization import check_fits_schedule
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import append_dims

__all__ = ["VPDenoiser", "clip_denoised"]


class VPDenoiser:
    """D(x, sigma, cond) = prediction.to_x0(backbone(x / sqrt(1 + sigma^2), t(sigma), cond), ...).

    The backbone sees x_vp in x's dtype and t as a float tensor of x's dtype; the conversion to x0
    runs in float32 (float64 if x is float64). Not an nn.Module: it owns no parameters.
    """

    def __init__(
        self,
        backbone: Callable[[Tensor, Tensor, Tensor | None], Tensor],
        schedule: NoiseSchedule,
        prediction: object,
    ) -> None:
        check_fits_schedule(prediction, schedule)
        self.backbone = backbone
        self.schedule = schedule
        self.prediction = prediction

    def _run(self, x: Tensor, sigma: Tensor, cond: Tensor | None):
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
        s64 = sigma.to(torch.float64)
        alpha64, sigma_path64 = self.schedule.sigma_space_coefficients(s64)
        t = self.schedule.sigma_to_t(s64).to(x.dtype)
        x_vp = x * append_dims(alpha64, x.ndim).to(x.dtype)
        out = self.backbone(x_vp, t, cond)
        dtype = torch.promote_types(x.dtype, torch.float32)
        alpha = append_dims(alpha64, x.ndim).to(dtype)
        sigma_vp = append_dims(sigma_path64, x.ndim).to(dtype)
        return out.to(dtype), x_vp.to(dtype), alpha, sigma_vp

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        """x0_hat = prediction.to_x0(out, x_vp, alpha, sigma_vp)."""
        out, x_vp, alpha, sigma_vp = self._run(x, sigma, cond)
        return self.prediction.to_x0(out, x_vp, alpha, sigma_vp)

    def predict(
        self, x: Tensor, sigma: Tensor, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(x0_hat, eps_hat) from one backbone call; eps_hat is the same in VP and sigma space."""
        out, x_vp, alpha, sigma_vp = self._run(x, sigma, cond)
        return (
            self.prediction.to_x0(out, x_vp, alpha, sigma_vp),
            self.prediction.to_eps(out, x_vp, alpha, sigma_vp),
        )

    def __repr__(self) -> str:
        return f"VPDenoiser({type(self.backbone).__name__}, {self.schedule!r}, {self.prediction!r})"


def clip_denoised(denoiser: Callable, lo: float = -1.0, hi: float = 1.0) -> Callable:
    """D_clip(x, sigma, cond) = clamp(D(x, sigma, cond), lo, hi).

    The "clip_denoised" of the DDPM/ADM samplers: data known to lie in [lo, hi] (images in
    [-1, 1]) keep the predicted x0 there, which stops early high-noise steps, where
    x0_hat = x - sigma eps_hat amplifies any error in eps_hat by sigma, from blowing up.
    """

    def clipped(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        return denoiser(x, sigma, cond).clamp(lo, hi)

    return clipped
