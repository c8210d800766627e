"""The exact conditional denoiser of super-resolution for Gaussian data, to test against.

Data x0 ~ N(m, v I) (images of shape (C, H, W)), observation y = A x0 (``degradation.py``).
With P = A^+ A, P x0 = A^+ y is known and (I - P) x0 ~ N((I - P) m, v (I - P)) is independent
of y; the noisy image x = x0 + sigma n observes (I - P) x0 through (I - P) x. Hence

    D(x, sigma, y) = E[x0 | x, y] = A^+ y + (I - P) [m + v / (v + sigma^2) (x - m)],

and the posterior p(x0 | y) = N(A^+ y + (I - P) m, v (I - P)): every pixel has variance
v (1 - 1/f^2), block means fixed to y. A sampler run with D draws from it.

With noise-conditioning augmentation the model is given y_s = A x0 + s e instead: the block means
u = A x0 (prior N(A m, v/f^2)) are then uncertain, and their posterior given y_s is
N(mu_s, tau_s^2), tau_s^2 = 1 / (f^2/v + 1/s^2), mu_s = tau_s^2 (f^2/v A m + y_s/s^2); the
block detail is unchanged, so every pixel's posterior variance is tau_s^2 + v (1 - 1/f^2).
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

    def denoise(self, x: Tensor, sigma: Tensor, y: Tensor, level: Tensor | float = 0.0) -> Tensor:
        """D(x, sigma, y_s) = A^+ u + (I - P)[m + v/(v + sigma^2) (x - m)], with u the
        posterior mean of the block means A x0 given A x and y_s = A x0 + s e
        (``posterior_block_means``); u = y when s = 0."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        gain = self.var / (self.var + append_dims(sigma, x.ndim) ** 2)
        guess = self.mean + gain * (x - self.mean)
        u = self.posterior_block_means(y.to(x.dtype), level, x=x, sigma=sigma)
        return upsample_nearest(u, self.factor) + block_detail(guess, self.factor)

    def posterior_block_means(self, y: Tensor, level: Tensor | float = 0.0, *,
                              x: Tensor | None = None, sigma: Tensor | None = None) -> Tensor:
        """E[A x0 | y_s (, x)] for y_s = A x0 + s e, e ~ N(0, I). Each block mean has prior
        N(A m, v/f^2), is observed by y_s with variance s^2 and (given the noisy image
        x = x0 + sigma n) by A x with variance sigma^2/f^2; the posterior mean weighs the three
        by their precisions f^2/v, 1/s^2, f^2/sigma^2 (multiplied through by s^2, so s = 0
        gives y exactly)."""
        s2 = append_dims(torch.as_tensor(level, dtype=y.dtype, device=y.device)
                         .expand(y.shape[0]), y.ndim) ** 2
        f2 = self.factor ** 2
        prior = downsample(self.mean.expand(y.shape[0], *self.mean.shape).to(y.dtype), self.factor)
        num, den = y + s2 * f2 / self.var * prior, 1 + s2 * f2 / self.var
        if x is not None:
            w = s2 * f2 / append_dims(sigma.to(y.dtype), y.ndim).clamp_min(1e-10) ** 2
            num, den = num + w * downsample(x.to(y.dtype), self.factor), den + w
        return num / den

    def posterior_block_var(self, level: float) -> float:
        """Var[A x0 | y_s] = 1 / (f^2/v + 1/s^2) (0 at s = 0)."""
        s2 = float(level) ** 2
        return 0.0 if s2 == 0 else s2 * self.var / (self.var + s2 * self.factor ** 2)

    def posterior_mean(self, y: Tensor, level: Tensor | float = 0.0) -> Tensor:
        """E[x0 | y_s] = A^+ mu_s + (I - P) m (mu_0 = y)."""
        m = self.mean.expand(y.shape[0], *self.mean.shape).to(y.dtype)
        return upsample_nearest(self.posterior_block_means(y, level), self.factor) \
            + block_detail(m, self.factor)

    @property
    def posterior_pixel_var(self) -> float:
        """Var[x0_ij | y] = v (1 - 1/f^2) for every pixel."""
        return self.var * (1.0 - 1.0 / self.factor ** 2)
