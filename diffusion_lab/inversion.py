"""Deterministic encoding of data into noise (DDIM inversion) and interpolation between noises.

The probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma is deterministic, so it can be
integrated upward: from an image x0, taken as the ODE's state at the smallest positive level
sigma_1 of a sampling grid, to x(sigma_max) at its top. Sampling from that x(sigma_max) with the
same solver on the same grid returns (approximately) x0: the x_T that "encodes" the image.

:func:`invert` runs the grid ``sigmas`` (descending, ending in 0, as the samplers take it) in
reverse, in lambda = -log sigma with h = lambda' - lambda < 0 (going up):

    order 1 (Euler = DDIM inversion, Song et al. 2021):   x' = (s'/s) x - expm1(-h) D(x, s)
    order 2 (DPM-Solver++(2M) run upward, Lu et al. 2022):  the same with D replaced by
        D_eff = (1 + 1/(2r)) D - 1/(2r) D_prev,   r = h_prev / h   (from the second step on)

the same update formulas as :func:`diffusion_lab.samplers.euler` and
:func:`~diffusion_lab.samplers.dpmpp_2m` with the levels swapped. Starting at sigma_1 instead of
0 costs O(sigma_1) (the "x0 is x(sigma_1)" approximation every DDIM inversion makes); the
discretisation error is O(h) and O(h^2). On Gaussian data (exact D, ``diffusion_lab.oracle``)
the exact map is x(sigma_b) = mu + sqrt(s^2 + sigma_b^2) / sqrt(s^2 + sigma_a^2) (x(sigma_a) - mu).

:func:`slerp` interpolates two noises along the great circle,

    slerp(a, b; t) = sin((1 - t) theta) / sin(theta) a + sin(t theta) / sin(theta) b,
    cos(theta) = <a, b> / (|a| |b|),

which keeps a Gaussian vector's norm (~sqrt(dim)) where the straight line would shrink it to
~sqrt(dim / 2) midway, a norm the model never saw at sigma_max.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, grid
from diffusion_lab.types import Denoiser

__all__ = ["INVERSION_ORDERS", "invert", "slerp"]

INVERSION_ORDERS = (1, 2)


@torch.no_grad()
def invert(denoiser: Denoiser, x0: Tensor, sigmas: Tensor, *, order: int = 2,
           cond: Tensor | None = None) -> Tensor:
    """x(sigmas[0]) from x0 = x(sigmas[-2]) by the PF-ODE run up the grid ``sigmas`` (descending,
    last 0; the smallest positive level is the start). ``order`` 1 (DDIM / Euler) or 2
    (DPM-Solver++(2M)); NFE = len(sigmas) - 2 (one evaluation per upward step)."""
    if order not in INVERSION_ORDERS:
        raise ValueError(f"inversion order must be one of {INVERSION_ORDERS}, got {order}")
    levels = grid(sigmas)[:-1][::-1]  # ascending, positive: sigma_1 < ... < sigma_max
    x = x0
    d_prev: Tensor | None = None
    h_prev = 0.0
    for s, s_next in itertools.pairwise(levels):
        d = denoise(denoiser, x, s, cond)
        h = math.log(s) - math.log(s_next)  # < 0: going up
        d_eff = d
        if order == 2 and d_prev is not None:
            r = h_prev / h
            d_eff = (1.0 + 0.5 / r) * d - (0.5 / r) * d_prev
        x = (s_next / s) * x - math.expm1(-h) * d_eff
        d_prev, h_prev = d, h
    return x


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between ``a`` and ``b`` (same shape (B, ...)), per sample, at
    ``t`` in [0, 1]; the straight line where the two are (anti)parallel to within 1e-7."""
    if a.shape != b.shape:
        raise ValueError(f"slerp needs two tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-300)
    theta = cos.clamp(-1.0, 1.0).acos()
    sin = theta.sin()
    straight = sin.abs() < 1e-7
    safe = torch.where(straight, torch.ones_like(sin), sin)
    wa = torch.where(straight, torch.full_like(sin, 1.0 - t), ((1.0 - t) * theta).sin() / safe)
    wb = torch.where(straight, torch.full_like(sin, t), (t * theta).sin() / safe)
    out = wa[:, None] * fa + wb[:, None] * fb
    return out.view_as(a).to(a.dtype)
