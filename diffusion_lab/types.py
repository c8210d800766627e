"""Shared contracts of the diffusion core: the denoiser, the sampler callback, one broadcast helper.

Everything after the backbone speaks the sigma-space denoiser contract

    D(x, sigma, cond) -> x0_hat,   where x = x0 + sigma * noise  (Karras et al. 2022, "EDM").

Samplers pass ``sigma`` as a float64 tensor of shape (B,); a denoiser casts it as it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

__all__ = ["Denoiser", "NoiseFn", "StepCallback", "StepInfo", "append_dims"]

#: ``D(x, sigma, cond) -> x0_hat`` with x (B, ...), sigma (B,), cond (B,) class ids or None.
Denoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]

#: ``noise(like) -> N(0, I)`` shaped like ``like``, e.g. ``diffusion_lab.noise.PerSampleNoise``.
NoiseFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What a sampler reports at step ``i``, before it moves from ``sigma`` to ``sigma_next``.

    ``x`` is the noisy sample at ``sigma`` (sigma-space), ``denoised`` is D(x, sigma).
    ``sigma`` and ``sigma_next`` are the exact float64 grid values ``sigmas[i]``, ``sigmas[i+1]``.
    """

    i: int
    sigma: float
    sigma_next: float
    x: Tensor
    denoised: Tensor


class StepCallback(Protocol):
    """Called once per sampler step with a :class:`StepInfo`."""

    def __call__(self, info: StepInfo) -> None: ...


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Reshape a per-sample tensor ``v`` of shape (B,) to (B, 1, ..., 1), ``ndim`` dims in all."""
    if v.ndim > ndim:
        raise ValueError(f"cannot broadcast a {v.ndim}-d tensor to {ndim} dims")
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))
