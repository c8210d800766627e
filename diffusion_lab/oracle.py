"""Exact denoiser for Gaussian data: a closed-form reference for testing and benchmarking samplers.

Data x0 ~ N(mu, diag(s^2)). At noise level sigma (x = x0 + sigma eps) the posterior mean is

    D*(x; sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu),     eps*(x; sigma) = (x - D*) / sigma,

the marginal is N(mu, s^2 + sigma^2), and the probability-flow ODE maps x(sigma_a) to
x(sigma_b) = mu + sqrt(s^2 + sigma_b^2) / sqrt(s^2 + sigma_a^2) (x(sigma_a) - mu).
Every sampler step is then affine per dimension in (x_T, z_1, z_2, ...), so a sampler's output law
is an exact Gaussian that :func:`affine_output_law` extracts with a handful of batch rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import append_dims

__all__ = ["GaussianOracle", "affine_output_law", "gaussian_w2"]


def gaussian_w2(mean_a: Tensor, std_a: Tensor, mean_b: Tensor, std_b: Tensor) -> float:
    """W2 between diagonal Gaussians: sqrt(sum (m_a - m_b)^2 + (s_a - s_b)^2)."""
    d2 = (mean_a.double() - mean_b.double()).pow(2) + (std_a.double() - std_b.double()).pow(2)
    return math.sqrt(d2.sum().item())


class GaussianOracle:
    """The exact D* for N(mean, diag(std^2)) data of shape (dim,); float64 internally."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = torch.as_tensor(std, dtype=torch.float64)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError("mean and std must be 1-d tensors of the same length")
        if not bool((self.std > 0).all()):
            raise ValueError("std must be positive")

    @classmethod
    def random(
        cls, dim: int = 8, seed: int = 0, std_min: float = 0.05, std_max: float = 1.0
    ) -> GaussianOracle:
        """Means ~ N(0, 0.5^2), stds log-spaced in [std_min, std_max] (seeded, reproducible)."""
        g = torch.Generator().manual_seed(seed)
        mean = 0.5 * torch.randn(dim, generator=g, dtype=torch.float64)
        std = torch.logspace(math.log10(std_min), math.log10(std_max), dim, dtype=torch.float64)
        return cls(mean, std)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def _bcast(self, sigma: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        sigma = append_dims(torch.as_tensor(sigma, dtype=torch.float64, device=x.device), x.ndim)
        return self.mean.to(x.device), self.std.to(x.device) ** 2, sigma

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """D*(x; sigma) = mu + s^2/(s^2 + sigma^2)(x - mu), in float64."""
        mu, var, sigma = self._bcast(sigma, x)
        return mu + var / (var + sigma**2) * (x.double() - mu)

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        """The sigma-space denoiser contract; returns x's dtype."""
        return self.denoise(x, sigma).to(x.dtype)

    def eps(self, x: Tensor, sigma: Tensor) -> Tensor:
        """eps*(x; sigma) = (x - mu) sigma / (s^2 + sigma^2) (= (x - D*)/sigma, finite at 0)."""
        mu, var, sigma = self._bcast(sigma, x)
        return (x.double() - mu) * sigma / (var + sigma**2)

    def flow(self, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
        """Exact PF-ODE map x(sigma_from) -> x(sigma_to)."""
        mu, var = self.mean.to(x.device), self.std.to(x.device) ** 2
        return mu + torch.sqrt((var + sigma_to**2) / (var + sigma_from**2)) * (x.double() - mu)

    def w2(self, mean: Tensor, std: Tensor) -> float:
        """W2 from N(mean, diag(std^2)) to the data law."""
        return gaussian_w2(mean, std, self.mean, self.std)

    def backbone(self, schedule: NoiseSchedule, prediction: object) -> Callable:
        """A fake VP backbone (x_vp, t, cond) -> eps / x0 / v target of ``prediction``, exact.

        sigma = schedule.t_to_sigma(t), (alpha, sigma_vp) = schedule.sigma_space_coefficients(sigma)
        (VP: 1/sqrt(1 + sigma^2), sigma alpha; linear flow path: 1 - t, t),
        x0 = D*(x_vp / alpha; sigma), eps = (x_vp - alpha x0)/sigma_vp,
        out = prediction.target(x0, eps, alpha, sigma_vp).
        """

        def fake_backbone(x_vp: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
            sigma = schedule.t_to_sigma(t.double()).to(x_vp.device)
            alpha, sigma_vp = schedule.sigma_space_coefficients(sigma)
            alpha, sigma_vp = append_dims(alpha, x_vp.ndim), append_dims(sigma_vp, x_vp.ndim)
            x0 = self.denoise(x_vp.double() / alpha, sigma)
            eps = (x_vp.double() - alpha * x0) / sigma_vp
            return prediction.target(x0, eps, alpha, sigma_vp).to(x_vp.dtype)

        return fake_backbone


class _UnitNoise:
    """Noise callable for affine_output_law: draw k is zero except a one in row ``offset + k``
    (all zeros when ``offset`` is None); counts its draws."""

    def __init__(self, offset: int | None) -> None:
        self.offset = offset
        self.calls = 0

    def __call__(self, like: Tensor) -> Tensor:
        out = torch.zeros_like(like)
        if self.offset is not None:
            row = self.offset + self.calls
            if row >= like.shape[0]:
                raise ValueError("the sampler drew noise more often than on its first run")
            out[row] = 1.0
        self.calls += 1
        return out


def affine_output_law(
    solver: Callable,
    denoiser: Callable,
    sigmas: Tensor,
    dim: int,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Exact (mean, std) of a sampler's output when each step is affine (Gaussian data):

    out = b + a z + sum_k c_k z_k per dimension, x_T = sqrt(1 + sigma_0^2) z. Row 0 (z = 0, zero
    noise) gives b, row 1 (z = 1) gives b + a; if the solver drew K noises, a second run with rows
    2 + k (unit noise at draw k) gives b + c_k. mean = b, var = a^2 + sum_k c_k^2.
    Needs a batch-independent, per-dimension affine denoiser (e.g. :class:`GaussianOracle`).
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    scale = math.sqrt(1.0 + sigmas[0].item() ** 2)

    def run(rows: int, noise: _UnitNoise) -> Tensor:
        x = torch.zeros(rows, dim, dtype=dtype)
        x[1] = scale
        return solver(denoiser, x, sigmas, noise=noise).double()

    probe = _UnitNoise(offset=None)
    out = run(2, probe)
    base, var = out[0], (out[1] - out[0]) ** 2
    if probe.calls:
        unit = _UnitNoise(offset=2)
        out = run(2 + probe.calls, unit)
        var = var + ((out[2:] - out[0]) ** 2).sum(dim=0)
    return base, var.sqrt()


def ode_prior_floor(oracle: GaussianOracle, sigma_max: float) -> float:
    """W2 to the data law of the *exact* probability-flow ODE started from the VP prior
    x ~ N(0, (1 + sigma_max^2) I) instead of the true marginal N(mu, s^2 + sigma_max^2):

        x0 = mu + s / sqrt(s^2 + sigma_max^2) (x - mu)

    the error a sampler that solves the ODE exactly keeps, because its start is the prior: the
    level at which accurate deterministic samplers of a model trained up to sigma_max meet.
    """
    def exact(denoiser, x, sigmas, noise=None):
        return oracle.flow(x, float(sigmas[0]), 0.0)

    grid = torch.tensor([float(sigma_max), 0.0], dtype=torch.float64)
    return oracle.w2(*affine_output_law(exact, oracle, grid, oracle.dim))
