"""Pieces shared by every sampler: grid validation, the affine step, NFE bookkeeping."""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from diffusion_lab.types import Denoiser, NoiseFn, StepCallback, StepInfo

__all__ = ["CountingDenoiser", "count_nfe", "solver_nfe"]


def grid(sigmas: Tensor) -> list[float]:
    """Validate a grid (1-d, >= 2 levels, strictly descending, last exactly 0); return floats."""
    sigmas = torch.as_tensor(sigmas)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(
            f"sigmas must be a 1-d grid of at least 2 levels, got shape {tuple(sigmas.shape)}"
        )
    values = sigmas.to(torch.float64).tolist()
    if values[-1] != 0.0:
        raise ValueError(f"sigmas must end at exactly 0, got {values[-1]}")
    if any(a <= b for a, b in itertools.pairwise(values)):
        raise ValueError("sigmas must be strictly descending")
    return values


def sigma_batch(sigma: float, x: Tensor) -> Tensor:
    """The noise level as the (B,) float64 tensor the denoiser contract expects."""
    return torch.full((x.shape[0],), sigma, dtype=torch.float64, device=x.device)


def denoise(denoiser: Denoiser, x: Tensor, sigma: float, cond: Tensor | None) -> Tensor:
    return denoiser(x, sigma_batch(sigma, x), cond).to(x.dtype)


def report(
    callback: StepCallback | None, i: int, s: float, s_next: float, x: Tensor, d: Tensor
) -> None:
    if callback is not None:
        callback(StepInfo(i=i, sigma=s, sigma_next=s_next, x=x, denoised=d))


def affine_step(
    x: Tensor, denoised: Tensor, ratio: float, sigma_up: float, noise: NoiseFn | None
) -> Tensor:
    """x' = D + ratio (x - D) + sigma_up z. With ratio = 0 and sigma_up = 0 returns D itself."""
    if ratio == 0.0 and sigma_up == 0.0:
        return denoised
    x = denoised + ratio * (x - denoised)
    if sigma_up > 0.0:
        if noise is None:
            raise ValueError(
                "this sampler step is stochastic: pass noise=PerSampleNoise(seed, indices)"
            )
        x = x + sigma_up * noise(x)
    return x


def require_noise(noise: NoiseFn | None, name: str) -> None:
    if noise is None:
        raise ValueError(
            f"{name} is stochastic: pass noise=, e.g. PerSampleNoise(seed, indices, stream=1)"
        )


def with_nfe(formula: Callable[[int], int]):
    """Decorator storing ``fn.nfe = formula``: network evaluations on a grid of n steps."""

    def wrap(fn):
        fn.nfe = formula
        return fn

    return wrap


def solver_nfe(solver: Callable, steps: int) -> int:
    """NFE of ``solver`` (possibly functools.partial'ed) on a grid of ``steps`` steps. A formula
    with keyword parameters (e.g. ``corrector_steps``) gets the partial's values for them."""
    fn, keywords = solver, {}
    while isinstance(fn, functools.partial):
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    formula = getattr(fn, "nfe", None)
    if formula is None:
        raise ValueError(
            f"{getattr(fn, '__name__', fn)!r} does not declare its NFE (use count_nfe)"
        )
    accepted = list(inspect.signature(formula).parameters)[1:]
    return int(formula(int(steps), **{k: v for k, v in keywords.items() if k in accepted}))


class CountingDenoiser:
    """Wraps a denoiser and counts its calls in ``.nfe`` (a guided call counts once)."""

    def __init__(self, denoiser: Denoiser) -> None:
        self.denoiser = denoiser
        self.nfe = 0

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        self.nfe += 1
        return self.denoiser(x, sigma, cond)


def count_nfe(denoiser: Denoiser) -> CountingDenoiser:
    """``counted = count_nfe(D); sampler(counted, ...); counted.nfe`` = number of calls."""
    return CountingDenoiser(denoiser)
