"""Multistep consistency sampling (Song et al. 2023, Algorithm 1) over a denoiser.

With a consistency function f (a distilled student's denoiser), each step jumps to data and, but
for the last, re-noises to the next level:

    x0_hat = f(x, s_i),   x = x0_hat + s_{i+1} z  (z ~ N(0, I), fresh per step),

so n steps cost n evaluations. On any other denoiser it is the "denoise, re-noise" sampler.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, grid, report, require_noise, with_nfe
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["ConsistencySpacing", "consistency"]


@with_nfe(lambda n: n)
@torch.no_grad()
def consistency(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """x0_hat = D(x, s_i); x = x0_hat + s_{i+1} z while s_{i+1} > 0. NFE = n (stochastic for n > 1)."""
    levels = grid(sigmas)
    if len(levels) > 2:
        require_noise(noise, "the multistep consistency sampler")
    d = x
    for i in range(len(levels) - 1):
        s, s_next = levels[i], levels[i + 1]
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        if s_next > 0.0:
            x = d + s_next * noise(d)
    return d


class ConsistencySpacing:
    """Levels for n consistency steps: the top level min(sigma_max, the schedule's sigma_max),
    then n - 1 levels spaced geometrically from ``sigma_hi`` down to ``sigma_lo`` (one step: the
    top only; two: top, sigma_hi), then 0. The top defaults to 80 (EDM's sigma_max): above it
    x0 from an eps network is (x - sigma eps_hat) and its error grows with sigma, while the
    prior N(0, (1 + sigma^2) I) barely changes; a student is distilled over the same range.
    ``sigma_hi`` defaults to 2.5: the 2-step FID of the distilled digit students is lowest
    around 1.5 (8x8) and 4 (28x28), and 1.8x (8x8) and 6.5x (28x28) higher at 0.8 than at 2.5
    (``diffusion_lab.distill.level_search`` searches it per student)."""

    def __init__(self, sigma_max: float = 80.0, sigma_hi: float = 2.5, sigma_lo: float = 0.1) -> None:
        if not 0 < sigma_lo <= sigma_hi < sigma_max:
            raise ValueError(f"need 0 < sigma_lo <= sigma_hi < sigma_max, got {sigma_lo}, {sigma_hi}, {sigma_max}")
        self.sigma_max, self.sigma_hi, self.sigma_lo = float(sigma_max), float(sigma_hi), float(sigma_lo)

    def __call__(self, schedule, num_steps: int) -> Tensor:
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
        n = int(num_steps)
        top = min(self.sigma_max, schedule.sigma_max)
        if self.sigma_hi >= top:
            raise ValueError(f"sigma_hi={self.sigma_hi} must be below the top level {top:.4g}")
        inner = [] if n == 1 else [self.sigma_hi] if n == 2 else torch.logspace(
            math.log10(self.sigma_hi), math.log10(self.sigma_lo), n - 1, dtype=torch.float64).tolist()
        return torch.tensor([top, *inner, 0.0], dtype=torch.float64)

    def __repr__(self) -> str:
        return (f"ConsistencySpacing(sigma_max={self.sigma_max}, sigma_hi={self.sigma_hi}, "
                f"sigma_lo={self.sigma_lo})")
