"""DPM-Solver++(2S): the singlestep second-order data-prediction solver (Lu et al. 2022, Alg. 1).

Where the multistep solvers reuse the previous step's evaluation, a singlestep solver spends a
fresh one inside each step: consecutive intervals of the grid are taken in pairs, the pair's
middle level is reached by a first-order step, and the model's value there gives the second-order
term of the step over the whole pair. NFE = n on a grid of n steps, as for the multistep solvers;
the grid decides where the intermediate evaluations sit (on the log-SNR grid, at the pair's
log-SNR midpoint). ``noise`` is accepted for a uniform signature and ignored;
``callback`` is called at every evaluation, the intermediate ones included.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import affine_step, denoise, grid, report, with_nfe
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["SINGLESTEP_VARIANTS", "dpmpp_2s"]

#: how the second-order term is weighted: "midpoint" (Lu et al.'s DPM-Solver-2 form) or "heun"
#: (the exact integral of a linear-in-lambda D; diffusers' solver_type names)
SINGLESTEP_VARIANTS = ("midpoint", "heun")


@with_nfe(lambda n: n)
@torch.no_grad()
def dpmpp_2s(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
    variant: str = "midpoint",
) -> Tensor:
    """DPM-Solver++(2S) in lambda = -log sigma over pairs of grid intervals s -> s_m -> s':

    D = D(x, s); u = (s_m/s) x - expm1(-h_0) D; D_m = D(u, s_m); D_1 = (D_m - D) / r,
    h = log(s/s'), h_0 = log(s/s_m), r = h_0 / h;
    midpoint: x' = (s'/s) x - expm1(-h) (D + D_1/2);
    heun:     x' = (s'/s) x - expm1(-h) D + (1 + expm1(-h)/h) D_1
    (the second is the exact integral sigma' int e^lambda D dlambda of D linear in lambda).

    Intervals 0-1, 2-3, ... are paired; the step to s' = 0 returns D (first order), and when the
    intervals before it are odd in number the last of them is a first-order step (diffusers'
    singlestep order list [1, 2, 1, 2, ..., 1] with final_sigmas_type="zero"). NFE = n.
    """
    if variant not in SINGLESTEP_VARIANTS:
        raise ValueError(f"dpmpp_2s variant must be one of {SINGLESTEP_VARIANTS}, got {variant!r}")
    levels = grid(sigmas)
    n = len(levels) - 1
    i = 0
    while i < n:
        s, s_mid = levels[i], levels[i + 1]
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_mid, x, d)
        u = affine_step(x, d, s_mid / s, 0.0, None)  # first order: D + (s_m/s)(x - D)
        if i + 2 >= n:  # no pair left before the step to 0: a first-order step
            x, i = u, i + 1
            continue
        s_next = levels[i + 2]
        d_mid = denoise(denoiser, u, s_mid, cond)
        report(callback, i + 1, s_mid, s_next, u, d_mid)
        h = math.log(s / s_next)
        d_1 = (d_mid - d) * (h / math.log(s / s_mid))
        em1 = math.expm1(-h)
        if variant == "midpoint":
            x = (s_next / s) * x - em1 * (d + 0.5 * d_1)
        else:
            x = (s_next / s) * x - em1 * d + (1.0 + em1 / h) * d_1
        i += 2
    return x
