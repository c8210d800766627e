"""The VP chain's own steps: DDIM (any eta) and DDPM ancestral sampling, written in sigma space.

These are discrete-chain updates, not SDE solvers.

Every step is x' = D + c (x - D) + sigma_up z with z = noise(x); only (c, sigma_up) differ. The step
to sigma' = 0 returns D (no noise). ``noise`` must be given (e.g. PerSampleNoise(seed, idx, 1))
whenever the sampler is stochastic: there is no global-RNG fallback.

VP <-> sigma space: x_sigma = x_vp / sqrt(ab), ab = 1/(1 + sigma^2). For a step from s to s' (any
grid, respaced or not) let ab = 1/(1+s^2), ab' = 1/(1+s'^2),
beta' = 1 - ab/ab' = (s^2 - s'^2)/(1+s^2).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from diffusion_lab.samplers._common import (
    affine_step,
    denoise,
    grid,
    report,
    require_noise,
    with_nfe,
)
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["ddim", "ddpm", "ddpm_large_variance"]

#: (s, s') -> (c, sigma_up) for a non-final step
StepRule = Callable[[float, float], tuple]


def _run(
    rule: StepRule,
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    cond: Tensor | None,
    callback: StepCallback | None,
    noise: NoiseFn | None,
    after_step: Callable[[Tensor, float], Tensor] | None = None,
) -> Tensor:
    """The chain of ``rule``'s steps; ``after_step(x, s')`` (a corrector) runs after each step
    that does not end at 0."""
    levels = grid(sigmas)
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        ratio, sigma_up = rule(s, s_next) if s_next > 0.0 else (0.0, 0.0)
        x = affine_step(x, d, ratio, sigma_up, noise)
        if after_step is not None and s_next > 0.0:
            x = after_step(x, s_next)
    return x


def _ddim_rule(eta: float) -> StepRule:
    def rule(s: float, s_next: float) -> tuple:
        sigma_up = eta * s_next * math.sqrt(1.0 - (s_next / s) ** 2)
        sigma_down = s_next if sigma_up == 0.0 else math.sqrt(s_next**2 - sigma_up**2)
        return sigma_down / s, sigma_up

    return rule


@with_nfe(lambda n: n)
@torch.no_grad()
def ddim(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    eta: float = 0.0,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) in sigma space.

    VP form: x_vp' = sqrt(ab') x0 + sqrt(1 - ab' - sig_t^2) eps + sig_t z, with
    sig_t^2 = eta^2 (1 - ab')/(1 - ab) (1 - ab/ab'). Divide by sqrt(ab') (x' = x_vp'/sqrt(ab')):
    (1 - ab')/ab' = s'^2 and (1 - ab/ab')/(1 - ab) = (s^2 - s'^2)/s^2, so with eps = (x - D)/s

        x' = D + sigma_down (x - D)/s + sigma_up z,
        sigma_up = eta sqrt(s'^2 (s^2 - s'^2)/s^2) = sig_t / sqrt(ab'),
        sigma_down = sqrt(s'^2 - sigma_up^2).

    eta = 0 is :func:`euler` (same arithmetic, no noise drawn); eta = 1 is DDPM with the posterior
    variance beta~ (sigma_down = s'^2/s). ``noise`` is required when eta > 0. NFE = n.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"ddim eta must lie in [0, 1], got {eta}")
    if eta > 0.0:
        require_noise(noise, f"ddim(eta={eta})")
    return _run(_ddim_rule(float(eta)), denoiser, x, sigmas, cond, callback, noise)


def _posterior_mean_ratio(s: float, s_next: float) -> float:
    """DDPM posterior mean in sigma space: mu = D + (s'^2/s^2)(x - D).

    From mu_vp = sqrt(ab') beta'/(1-ab) x0 + sqrt(ab/ab') (1-ab')/(1-ab) x_vp divided by sqrt(ab'):
    beta'/(1-ab) = 1 - s'^2/s^2 and (ab/ab') (1-ab')/(1-ab) = s'^2/s^2.
    """
    return (s_next / s) ** 2


def _ddpm_small_rule(s: float, s_next: float) -> tuple:
    # beta~ / ab' = (1-ab')/(1-ab) beta' / ab' = s'^2 (s^2 - s'^2)/s^2
    return _posterior_mean_ratio(s, s_next), s_next * math.sqrt(1.0 - (s_next / s) ** 2)


def _ddpm_large_rule(s: float, s_next: float) -> tuple:
    # beta' / ab' = (s^2 - s'^2)(1 + s'^2)/(1 + s^2)
    var = (s - s_next) * (s + s_next) * (1.0 + s_next**2) / (1.0 + s**2)
    return _posterior_mean_ratio(s, s_next), math.sqrt(var)


@with_nfe(lambda n: n)
@torch.no_grad()
def ddpm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020) with the posterior ("small") variance beta~:

    x' ~ q(x' | x, x0 = D): x' = D + (s'^2/s^2)(x - D) + s' sqrt(1 - s'^2/s^2) z.
    Works on respaced grids (beta' = 1 - ab/ab'); the step to 0 returns D. ``noise`` required.
    NFE = n.
    """
    require_noise(noise, "ddpm")
    return _run(_ddpm_small_rule, denoiser, x, sigmas, cond, callback, noise)


@with_nfe(lambda n: n)
@torch.no_grad()
def ddpm_large_variance(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """DDPM ancestral sampling with the "large" variance beta' = 1 - ab/ab' (Ho et al. 2020,
    sigma_t^2 = beta_t):

    x' = D + (s'^2/s^2)(x - D) + sqrt((s^2 - s'^2)(1 + s'^2)/(1 + s^2)) z; the step to 0 returns D
    (no noise, although beta'_0 > 0). ``noise`` required. NFE = n.
    """
    require_noise(noise, "ddpm_large_variance")
    return _run(_ddpm_large_rule, denoiser, x, sigmas, cond, callback, noise)
