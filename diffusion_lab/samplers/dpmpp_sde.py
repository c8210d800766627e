"""DPM-Solver++(2M) SDE (Lu et al. 2022, sec. 5; Karras et al. 2022's stochastic sampler in
exponential-integrator form), sigma space, data prediction.

With h = log(s/s') and eta in [0, 1] (eta = 1: the reverse SDE, eta = 0: the ODE), one step is

    x' = (s'/s) e^{-eta h} x + (1 - e^{-(1+eta) h}) (D + (D - D_prev)/(2 r)) + s' sqrt(1 - e^{-2 eta h}) z

with r = h_prev/h (the midpoint form; D_prev unused on the first step) and z the step noise.
The step to sigma = 0 returns D. NFE = n; noise is drawn once per step but the last.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, grid, report, require_noise, with_nfe
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["dpmpp_2m_sde"]


@with_nfe(lambda n: n)
@torch.no_grad()
def dpmpp_2m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
    eta: float = 1.0,
) -> Tensor:
    """DPM-Solver++(2M) SDE with stochasticity ``eta`` (1 = the reverse SDE)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    levels = grid(sigmas)
    if eta > 0.0 and len(levels) > 2:
        require_noise(noise, "dpmpp_2m_sde")
    d_prev: Tensor | None = None
    h_prev = 0.0
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        if s_next == 0.0:
            x = d
            continue
        h = math.log(s) - math.log(s_next)
        d_eff = d if d_prev is None else d + (0.5 * h / h_prev) * (d - d_prev)
        x = (s_next / s) * math.exp(-eta * h) * x - math.expm1(-(1.0 + eta) * h) * d_eff
        if eta > 0.0:
            x = x + s_next * math.sqrt(-math.expm1(-2.0 * eta * h)) * noise(x)
        d_prev, h_prev = d, h
    return x
