"""Consistency distillation (Song et al. 2023, Algorithm 2) as pure torch over denoisers.

The student is a consistency function in sigma space, built on a denoiser D_theta:

    f(x, s) = c_skip(s) x + c_out(s) D_theta(x, s),
    c_skip = sd^2 / (k^2 (s - s_min)^2 + sd^2),  c_out = k (s - s_min) / sqrt(k^2 (s - s_min)^2 + sd^2),

so f(x, s_min) = x exactly (the boundary condition) and f ~ D_theta above s ~ 1/k (k = 10 as in
latent consistency models; sd = sigma_data). Distillation on a grid s_0 > s_1 > ... > s_{N-1}:

    i ~ U{0..N-2},  x = x0 + s_i eps,  x' = one teacher ODE step from s_i to s_{i+1},
    L = d(f_theta(x, s_i), f_theta-(x', s_{i+1})),   d(a, b) = sqrt(|a - b|^2 + c^2) - c

(pseudo-Huber, Song & Dhariwal 2023), theta- the target (EMA) weights, no gradient through it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffusion_lab.types import Denoiser, append_dims

__all__ = ["ConsistencyFunction", "consistency_coefficients", "consistency_distillation_loss",
           "pseudo_huber", "teacher_step"]


def consistency_coefficients(sigma: Tensor, sigma_min: float, sigma_data: float = 0.5,
                             k: float = 10.0) -> tuple[Tensor, Tensor]:
    """(c_skip, c_out) at ``sigma`` (module docstring); (1, 0) at sigma_min."""
    u = k * (sigma - sigma_min)
    denom = u * u + sigma_data**2
    return sigma_data**2 / denom, u / denom.sqrt()


class ConsistencyFunction:
    """f(x, s, cond) = c_skip(s) x + c_out(s) D(x, s, cond): the denoiser contract, so every
    sampler (and the consistency sampler) can call a student."""

    def __init__(self, denoiser: Denoiser, sigma_min: float, sigma_data: float = 0.5,
                 k: float = 10.0) -> None:
        if not sigma_min > 0:
            raise ValueError(f"sigma_min must be > 0, got {sigma_min}")
        self.denoiser, self.sigma_min = denoiser, float(sigma_min)
        self.sigma_data, self.k = float(sigma_data), float(k)

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out = consistency_coefficients(sigma.double(), self.sigma_min, self.sigma_data,
                                                 self.k)
        d = self.denoiser(x, sigma, cond)
        dtype = torch.promote_types(d.dtype, x.dtype)
        return (append_dims(c_skip, x.ndim).to(dtype) * x + append_dims(c_out, x.ndim).to(dtype) * d)


@torch.no_grad()
def teacher_step(teacher: Denoiser, x: Tensor, s: Tensor, s_next: Tensor, cond: Tensor | None,
                 solver: str = "heun") -> Tensor:
    """One PF-ODE step per sample from s to s_next (> 0), (B,) levels: Euler (DDIM),
    x' = D + (s'/s)(x - D), or Heun (EDM Algorithm 1), x' = x_e + (s - s')/(2 s') (D' - D)."""
    r = append_dims((s_next / s).to(x.dtype), x.ndim)
    d = teacher(x, s, cond).to(x.dtype)
    x_euler = d + r * (x - d)
    if solver == "euler":
        return x_euler
    d_next = teacher(x_euler, s_next, cond).to(x.dtype)
    return x_euler + append_dims((0.5 * (s - s_next) / s_next).to(x.dtype), x.ndim) * (d_next - d)


def pseudo_huber(a: Tensor, b: Tensor, c: float) -> Tensor:
    """Per-sample sqrt(|a - b|^2 / n + c^2) - c (n = elements per sample): ~ half the MSE / c
    for small errors, ~ the RMS error for large ones."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
    return (mse + c * c).sqrt() - c


def consistency_distillation_loss(
    student: Callable[..., Tensor],
    target: Callable[..., Tensor],
    teacher: Denoiser,
    x0: Tensor,
    cond: Tensor | None,
    levels: Tensor,
    *,
    solver: str = "heun",
    huber_c: float = 0.03,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """(per-sample loss (B,), the drawn levels s_i (B,) float64); ``levels`` descending (N,)."""
    batch = x0.shape[0]
    draw = generator.device if generator is not None else x0.device
    i = torch.randint(0, levels.numel() - 1, (batch,), generator=generator, device=draw).cpu()
    s, s_next = levels[i].to(x0.device), levels[i + 1].to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=draw, dtype=x0.dtype).to(x0.device)
    x = x0 + append_dims(s, x0.ndim).to(x0.dtype) * eps
    x_next = teacher_step(teacher, x, s, s_next, cond, solver)
    with torch.no_grad():
        want = target(x_next, s_next, cond)
    return pseudo_huber(student(x, s, cond), want, huber_c), s
