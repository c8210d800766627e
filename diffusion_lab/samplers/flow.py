"""The flow ODE in t, dx_t/dt = u(x_t, t), as flow-matching users write it, on any denoiser.

On the linear path x_t = (1 - t) x0 + t eps the sigma-space sample is x = x_t / (1 - t) with
sigma = t / (1 - t), and the velocity follows from the denoiser D(x, sigma, cond) -> x0_hat:

    u(x_t, t) = (x_t - x0_hat) / t,   x0_hat = D(x_t / (1 - t), t / (1 - t), cond).

The samplers take the usual sigma grid (any spacing; :class:`UniformTimeSpacing` is the
uniform-in-t grid flow models are sampled on) and return x0; the step to t = 0 returns D
(the denoised mean), as every sampler here does. NFE on n steps: flow_euler n, flow_midpoint
2n - 1. Euler in t is algebraically the sigma-space Euler step (DDIM): x_t' = D + (t'/t)(x_t - D)
is x' = D + (s'/s)(x - D) after dividing by 1 - t'; the midpoint rule is a different
second-order method.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, grid, report, with_nfe
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["UniformTimeSpacing", "flow_euler", "flow_midpoint"]


def _time(sigma: float) -> float:
    """t = sigma / (1 + sigma) (t = 1 at sigma = inf)."""
    return 1.0 if math.isinf(sigma) else sigma / (1.0 + sigma)


def _x0_hat(denoiser: Denoiser, x_t: Tensor, t: float, cond: Tensor | None) -> Tensor:
    return denoise(denoiser, x_t / (1.0 - t), t / (1.0 - t), cond)


@with_nfe(lambda n: n)
@torch.no_grad()
def flow_euler(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """Euler in t: x_{t'} = x_t + (t' - t) u(x_t, t), u = (x_t - D) / t; t' = 0 returns D. NFE = n."""
    levels = grid(sigmas)
    x_t = x / (1.0 + levels[0])
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        t, t_next = _time(s), _time(s_next)
        d = _x0_hat(denoiser, x_t, t, cond)
        report(callback, i, s, s_next, x_t / (1.0 - t), d)
        x_t = d if t_next == 0.0 else x_t + (t_next - t) * (x_t - d) / t
    return x_t


@with_nfe(lambda n: 2 * n - 1)
@torch.no_grad()
def flow_midpoint(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
) -> Tensor:
    """Explicit midpoint in t (2nd order): t_m = (t + t')/2, x_m = x_t + (t_m - t) u(x_t, t),
    x_{t'} = x_t + (t' - t) u(x_m, t_m); the step to t' = 0 is Euler (returns D). NFE = 2n - 1."""
    levels = grid(sigmas)
    x_t = x / (1.0 + levels[0])
    for i, (s, s_next) in enumerate(itertools.pairwise(levels)):
        t, t_next = _time(s), _time(s_next)
        d = _x0_hat(denoiser, x_t, t, cond)
        report(callback, i, s, s_next, x_t / (1.0 - t), d)
        if t_next == 0.0:
            x_t = d
            continue
        t_mid = 0.5 * (t + t_next)
        x_mid = x_t + (t_mid - t) * (x_t - d) / t
        d_mid = _x0_hat(denoiser, x_mid, t_mid, cond)
        x_t = x_t + (t_next - t) * (x_mid - d_mid) / t_mid
    return x_t


class UniformTimeSpacing:
    """Uniform in t on the linear path: t_i = t_top (1 - i/n), sigma_i = t_i / (1 - t_i), with
    t_top = sigma_max / (1 + sigma_max) the schedule's top level. ``shift`` (SD3's timestep
    shift) maps t -> shift t / (1 + (shift - 1) t); shift > 1 spends more steps at high noise."""

    def __init__(self, shift: float = 1.0) -> None:
        if not (math.isfinite(shift) and shift > 0):
            raise ValueError(f"shift must be > 0, got {shift}")
        self.shift = float(shift)

    def __call__(self, schedule, num_steps: int) -> Tensor:
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
        top = _time(schedule.sigma_max)
        t = torch.linspace(1.0, 0.0, int(num_steps) + 1, dtype=torch.float64)
        t = self.shift * t / (1.0 + (self.shift - 1.0) * t) * top
        sigmas = t / (1.0 - t)
        sigmas[0] = schedule.sigma_max  # exact: the prior is defined at sigma_max
        sigmas[-1] = 0.0
        return sigmas

    def __repr__(self) -> str:
        return f"UniformTimeSpacing(shift={self.shift})"
