"""UniPC (Zhao et al. 2023): a unified predictor-corrector of the PF-ODE, data prediction.

In lambda = -log sigma, h = lambda' - lambda, with D_0 the output at sigma and earlier outputs
D_k at lambda_k, r_k = (lambda_k - lambda)/h (< 0), the predictor UniP-p is

    x~' = (s'/s) x + (1 - e^{-h}) D_0 - B(h) sum_k rho_k (D_k - D_0)/r_k,

and after the one evaluation D' = D(x~', s') the corrector UniC adds the new point (r = 1):

    x' = (s'/s) x + (1 - e^{-h}) D_0 - B(h) [sum_k rho^c_k (D_k - D_0)/r_k + rho^c_p (D' - D_0)].

The weights solve R rho = b, R_ik = r_k^(i-1), b_i = i! g_i(-h)/B(h) with
g_1(z) = (e^z - 1)/z - 1, g_(i+1) = g_i/z - 1/(i+1)!  (the Taylor coefficients of the exact
exponential integrator); predictor order 2 and corrector order 1 use rho = 1/2. B(h) = -h ("bh1")
or e^{-h} - 1 ("bh2"). D' feeds the next step, so the corrector costs no evaluation: NFE = n,
order p + 1. The step to sigma = 0 returns D (as in every sampler here).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, grid, report, with_nfe
from diffusion_lab.samplers.multistep import step_order
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["unipc"]

B_OF_H = {"bh1": lambda z: z, "bh2": math.expm1}  # B as a function of z = -h


def unipc_weights(rks: list[float], h: float, variant: str, predictor: bool) -> list[float]:
    """rho for the points ``rks`` (the last one r = 1: the new point, used by the corrector
    only). Predictor: solve the leading (p-1)x(p-1) block; corrector: the full p x p system."""
    z = -h
    b_h = B_OF_H[variant](z)
    g, factorial, b = math.expm1(z) / z - 1.0, 1, []
    for i in range(1, len(rks) + 1):
        b.append(g * factorial / b_h)
        factorial *= i + 1
        g = g / z - 1.0 / factorial
    size = len(rks) - 1 if predictor else len(rks)
    if size == 0:
        return []
    if size == 1:
        return [0.5]
    r = torch.tensor(rks[:size], dtype=torch.float64)
    system = torch.stack([r**i for i in range(size)])
    return torch.linalg.solve(system, torch.tensor(b[:size], dtype=torch.float64)).tolist()


def _combine(weights: list[float], diffs: list[Tensor]) -> Tensor | float:
    return sum((w * d for w, d in zip(weights, diffs, strict=True)), start=0.0)


@with_nfe(lambda n: n)
@torch.no_grad()
def unipc(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
    order: int = 2,
    variant: str = "bh2",
    corrector: bool = True,
    lower_order_final: bool = False,
) -> Tensor:
    """UniPC-p (``order`` = p in 1..3, ``variant`` bh1|bh2); ``corrector=False`` is UniP alone."""
    if order not in (1, 2, 3):
        raise ValueError(f"unipc order must be 1, 2 or 3, got {order!r}")
    if variant not in B_OF_H:
        raise ValueError(f"unipc variant must be one of {sorted(B_OF_H)}, got {variant!r}")
    levels = grid(sigmas)
    n = len(levels) - 1
    lams: list[float] = []
    ds: list[Tensor] = []
    pending = None  # (base x', h, r_k, (D_k - D_0)/r_k, D_0) of the last predictor step
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        d = denoise(denoiser, x, s, cond)
        if pending is not None and corrector and s_next != 0.0:
            base, h, rks, diffs, d0 = pending
            rho = unipc_weights([*rks, 1.0], h, variant, predictor=False)
            x = base - B_OF_H[variant](-h) * (_combine(rho[:-1], diffs) + rho[-1] * (d - d0))
        report(callback, i, s, s_next, x, d)
        if s_next == 0.0:
            x = d
            continue
        lams, ds = [-math.log(s), *lams][:order], [d, *ds][:order]
        k = step_order(order, i, n, len(ds), lower_order_final)
        h = math.log(s) - math.log(s_next)
        rks = [(lam - lams[0]) / h for lam in lams[1:k]]
        diffs = [(dk - d) / r for dk, r in zip(ds[1:k], rks, strict=True)]
        base = (s_next / s) * x - math.expm1(-h) * d
        rho = unipc_weights([*rks, 1.0], h, variant, predictor=True)
        x = base - B_OF_H[variant](-h) * _combine(rho, diffs)
        pending = (base, h, rks, diffs, d)
    return x
