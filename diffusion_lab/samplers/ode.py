"""Deterministic samplers of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma.

Each is ``fn(denoiser, x, sigmas, *, cond=None, callback=None, noise=None) -> x0`` with x the
sigma-space sample at sigmas[0] and ``sigmas`` a strictly descending grid ending in 0. ``noise`` is
accepted for a uniform signature and ignored. Arithmetic follows x's dtype (float32 by default);
grid values stay Python floats (float64).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import affine_step, denoise, grid, report, with_nfe
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["dpmpp_2m", "euler", "heun"]


@with_nfe(lambda n: n)
@torch.no_grad()
def euler(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """Euler on the PF-ODE = DDIM with eta = 0 (Song et al. 2021, eq. 12 in sigma space):

    x' = D + (s'/s)(x - D), D = D(x, s); the step to s' = 0 returns D. NFE = n.
    """
    levels = grid(sigmas)
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        x = affine_step(x, d, s_next / s, 0.0, None)
    return x


@with_nfe(lambda n: 2 * n - 1)
@torch.no_grad()
def heun(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1, deterministic):

    d = (x - D(x, s))/s, x_e = x + (s' - s) d, d' = (x_e - D(x_e, s'))/s',
    x' = x + (s' - s)(d + d')/2; the step to s' = 0 is Euler (returns D). NFE = 2n - 1.

    Evaluated in the algebraically equal form x' = x_e + (s - s')/(2 s') (D' - D), with
    x_e = D + (s'/s)(x - D): no O(sigma) slope is multiplied by an O(sigma) step, so float32
    keeps its precision at sigma ~ 2e4 (the cosine schedule's last level).
    """
    levels = grid(sigmas)
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        x_euler = affine_step(x, d, s_next / s, 0.0, None)
        if s_next == 0.0:
            x = x_euler
            continue
        d_next = denoise(denoiser, x_euler, s_next, cond)
        x = x_euler + (0.5 * (s - s_next) / s_next) * (d_next - d)
    return x


@with_nfe(lambda n: n)
@torch.no_grad()
def dpmpp_2m(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in lambda = -log sigma, data prediction:

    h = lambda' - lambda, x' = (s'/s) x - expm1(-h) D_i, with D_i = D on the first step and on the
    step to s' = 0 (first order), else D_i = (1 + 1/(2r)) D - 1/(2r) D_prev, r = h_prev / h.
    NFE = n.
    """
    levels = grid(sigmas)
    d_prev: Tensor | None = None
    h_prev = 0.0
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        if s_next == 0.0:
            x = d
            continue
        h = math.log(s) - math.log(s_next)
        d_eff = d
        if d_prev is not None:
            r = h_prev / h
            d_eff = (1.0 + 0.5 / r) * d - (0.5 / r) * d_prev
        x = (s_next / s) * x - math.expm1(-h) * d_eff
        d_prev, h_prev = d, h
    return x
