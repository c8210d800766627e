"""The exact conditional denoiser of super-resolution for Gaussian data, to test against.

Data x0 ~ N(m, v I) (images of shape (C, H, W)), observation y = A x0 (``degradation.py``).
With P = A^+ A, P x0 = A^+ y is known and (I - P) x0 ~ N((I - P) m, v (I - P)) is independent
of y; the noisy image x = x0 + sigma n observes (I - P) x0 through (I - P) x. Hence

    D(x, sigma, y) = E[x0 | x, y] = A^+ y + (I - P) [m + v / (v + sigma^2) (x - m)],

and the posterior p(x0 | y) = N(A^+ y + (I - P) m, v (I - P)): every pixel has variance
v (1 - 1/f^2), block means fixed to y. A sampler run with D draws from it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffusion_lab.super_resolution.degradation import (
    block_detail,
    check_factor,
    downsample,
    upsample_nearest,
)
from diffusion_lab.types import append_dims


class GaussianSuperResolutionOracle:
    """Data N(mean, var I) over images shaped like ``mean`` (C, H, W); the factor-``f`` task."""

    def __init__(self, mean: Tensor, var: float, factor: int) -> None:
        self.mean = mean
        self.var = float(var)
        self.factor = check_factor(mean.shape[-1], factor)

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.mean + self.var ** 0.5 * torch.randn((n, *self.mean.shape), generator=generator,
                                                         dtype=self.mean.dtype)

    def observe(self, x0: Tensor) -> Tensor:
        return downsample(x0, self.factor)

    def denoise(self, x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
        """D(x, sigma, y) = A^+ y + (I - P)[m + v/(v + sigma^2) (x - m)]."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        gain = self.var / (self.var + append_dims(sigma, x.ndim) ** 2)
        guess = self.mean + gain * (x - self.mean)
        return upsample_nearest(y.to(x.dtype), self.factor) + block_detail(guess, self.factor)

    def posterior_mean(self, y: Tensor) -> Tensor:
        """E[x0 | y] = A^+ y + (I - P) m."""
        m = self.mean.expand(y.shape[0], *self.mean.shape).to(y.dtype)
        return upsample_nearest(y, self.factor) + block_detail(m, self.factor)

    @property
    def posterior_pixel_var(self) -> float:
        """Var[x0_ij | y] = v (1 - 1/f^2) for every pixel."""
        return self.var * (1.0 - 1.0 / self.factor ** 2)
