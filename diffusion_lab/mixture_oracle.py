"""Exact denoiser of a Gaussian mixture: a non-Gaussian reference with a closed-form D*.

Data x0 ~ sum_k pi_k N(mu_k, s^2 I). At noise level sigma the marginal is
sum_k pi_k N(mu_k, (s^2 + sigma^2) I) and the posterior mean is

    D*(x; sigma) = sum_k w_k(x) (mu_k + s^2/(s^2 + sigma^2) (x - mu_k)),
    w_k(x) = softmax_k(log pi_k - |x - mu_k|^2 / (2 (s^2 + sigma^2))).

Samplers are scored by the sliced W2 of their samples to data samples
(:func:`sliced_w2`), whose floor is the sliced W2 between two data sample sets of that size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffusion_lab.types import append_dims

__all__ = ["GaussianMixtureOracle", "sliced_w2"]


class GaussianMixtureOracle:
    """Mixture of isotropic Gaussians with means ``means`` (K, dim), std ``std``, weights."""

    def __init__(self, means: Tensor, std: float, weights: Tensor | None = None) -> None:
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.ndim != 2:
            raise ValueError("means must be (K, dim)")
        k = self.means.shape[0]
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else weights
        self.log_weights = torch.log(torch.as_tensor(w, dtype=torch.float64) / sum(w))
        self.std = float(std)

    @classmethod
    def ring(cls, modes: int = 8, radius: float = 1.0, std: float = 0.05) -> GaussianMixtureOracle:
        """``modes`` equal-weight modes evenly spaced on a circle (2-D)."""
        a = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
        return cls(torch.stack([radius * a.cos(), radius * a.sin()], dim=1), std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _terms(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(logits log pi_k - |x - mu_k|^2 / (2 (s^2 + sigma^2)) (B, K), per-mode posterior
        means (B, K, dim))."""
        var = append_dims(torch.as_tensor(sigma, dtype=torch.float64, device=x.device), 2) ** 2 \
            + self.std**2  # (B, 1) or (1, 1)
        diff = x.double()[:, None, :] - self.means.to(x.device)[None]  # (B, K, dim)
        logits = self.log_weights.to(x.device) - diff.pow(2).sum(-1) / (2 * var)  # (B, K)
        shrink = self.std**2 / var  # (B, 1)
        return logits, self.means.to(x.device)[None] + shrink[:, :, None] * diff

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """D*(x; sigma) in float64, x (B, dim), sigma scalar or (B,)."""
        logits, per_mode = self._terms(x, sigma)
        return (torch.softmax(logits, dim=1)[:, :, None] * per_mode).sum(1)

    def class_logits(self, x: Tensor, sigma: Tensor) -> Tensor:
        """log p(k | x; sigma) + const, the exact noisy classifier of the mode labels: the
        softmax of these logits is the mode's posterior weight w_k(x) (autograd-friendly, x's
        dtype promoted to float64)."""
        return self._terms(x, sigma)[0]

    def denoise_mode(self, x: Tensor, sigma: Tensor, k: Tensor) -> Tensor:
        """E[x0 | x, mode k] = mu_k + s^2 / (s^2 + sigma^2) (x - mu_k): the exact denoiser of
        mode k alone (the class-conditional denoiser when the modes are the classes)."""
        _, per_mode = self._terms(x, sigma)
        return per_mode[torch.arange(len(x)), torch.as_tensor(k).long()]

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.denoise(x, sigma).to(x.dtype)

    def eps(self, x: Tensor, sigma: Tensor) -> Tensor:
        """eps*(x; sigma) = (x - D*)/sigma."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return (x.double() - self.denoise(x, sigma)) / append_dims(sigma, 2)

    def sample(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=g)
        return self.means[k] + self.std * torch.randn(n, self.dim, generator=g, dtype=torch.float64)


def sliced_w2(a: Tensor, b: Tensor, directions: int = 256, seed: int = 0) -> float:
    """sqrt(mean over random unit directions u of W2^2(u.a, u.b)), 1-d W2 by sorted quantiles
    (equal sample counts)."""
    if a.shape != b.shape:
        raise ValueError("sliced_w2 needs two sample sets of the same shape")
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(a.shape[1], directions, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=0, keepdim=True)
    pa, _ = (a.double() @ u).sort(dim=0)
    pb, _ = (b.double() @ u).sort(dim=0)
    return math.sqrt((pa - pb).pow(2).mean().item())
