"""Higher-order multistep solvers of the PF-ODE in lambda = -log sigma, data prediction.

With lambda = -log sigma the ODE dx/dsigma = (x - D)/sigma reads dx/dlambda = D - x, whose exact
solution over a step h = lambda' - lambda is the exponential integrator

    x' = e^{-h} x + int_0^h e^{-(h - v)} D(lambda + v) dv
       = (s'/s) x + phi_1(h) D + phi_2(h) D' + phi_3(h) D'' + ...          (D^(k) = d^k D/dlambda^k)

with phi_1 = 1 - e^{-h}, phi_2 = h - phi_1, phi_3 = h^2/2 - phi_2 (Lu et al. 2022, DPM-Solver++).
A k-step method replaces D', D'' by the derivatives of the polynomial through the last k
denoiser outputs (Newton divided differences on the non-uniform lambda grid), so each step costs
one evaluation and is k-th order accurate.

Like every sampler here the step to sigma = 0 returns D (e^{-h} = 0, phi_1 = 1: first order).
``lower_order_final`` additionally caps the order of the k-th last step at k (the last steps of a
short grid are the longest in lambda, where extrapolating old outputs hurts most).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, grid, report, with_nfe
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["dpmpp_3m", "lambda_derivatives", "phi_functions", "step_order"]


def phi_functions(h: float) -> tuple[float, float, float]:
    """(phi_1, phi_2, phi_3)(h) = (1 - e^{-h}, h - phi_1, h^2/2 - phi_2), in float64."""
    phi1 = -math.expm1(-h)
    phi2 = h - phi1
    return phi1, phi2, 0.5 * h * h - phi2


def lambda_derivatives(lams: list[float], ds: list[Tensor]) -> list[Tensor]:
    """[D', D''] (as many as the points allow, up to 2) at lams[0] of the polynomial through
    (lams[k], ds[k]), newest first: p(u) = D_0 + f01 (u - l0) + f012 (u - l0)(u - l1), so
    p'(l0) = f01 + f012 (l0 - l1) and p'' = 2 f012."""
    if len(ds) < 2:
        return []
    f01 = (ds[0] - ds[1]) / (lams[0] - lams[1])
    if len(ds) < 3:
        return [f01]
    f12 = (ds[1] - ds[2]) / (lams[1] - lams[2])
    f012 = (f01 - f12) / (lams[0] - lams[2])
    return [f01 + (lams[0] - lams[1]) * f012, 2.0 * f012]


def step_order(order: int, i: int, num_steps: int, history: int, lower_order_final: bool) -> int:
    """Order of step i of num_steps: at most ``order`` and the outputs seen so far; with
    ``lower_order_final`` also at most num_steps - i (the last step 1, the one before 2, ...)."""
    k = min(order, history)
    return min(k, num_steps - i) if lower_order_final else k


@with_nfe(lambda n: n)
@torch.no_grad()
def dpmpp_3m(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
    lower_order_final: bool = False,
) -> Tensor:
    """DPM-Solver++(3M): x' = (s'/s) x + phi_1 D + phi_2 D' + phi_3 D'' with D', D'' from the
    quadratic through the last three outputs (fewer on the first two steps). NFE = n; third order.
    """
    levels = grid(sigmas)
    n = len(levels) - 1
    lams: list[float] = []
    ds: list[Tensor] = []
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        report(callback, i, s, s_next, x, d)
        if s_next == 0.0:
            x = d
            continue
        lams, ds = [-math.log(s), *lams][:3], [d, *ds][:3]
        k = step_order(3, i, n, len(ds), lower_order_final)
        h = math.log(s) - math.log(s_next)
        phis = phi_functions(h)
        x = (s_next / s) * x + phis[0] * d
        for phi, deriv in zip(phis[1:], lambda_derivatives(lams[:k], ds[:k]), strict=False):
            x = x + phi * deriv
    return x
