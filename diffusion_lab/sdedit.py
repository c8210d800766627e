"""Image-to-image by partial noising and denoising (SDEdit, Meng et al. 2022).

A real image y is noised to an intermediate level and solved back to sigma = 0 with any sampler:
the coarse layout of y survives the noise, the details come from the model. ``strength`` in
(0, 1] picks how far: of a sampler's n-step grid sigma_0 > ... > sigma_n = 0, the last
k = ceil(strength * n) steps are run (diffusers' img2img convention),

    x(sigma_{n-k}) = y + sigma_{n-k} z,   z ~ N(0, I)      (sigma space: x = x0 + sigma eps)

so strength 1 starts from (almost) pure noise and ignores y, small strengths barely change it.
For Gaussian data the probability-flow ODE maps that start exactly to
mu + s / sqrt(s^2 + sigma^2) (y + sigma z - mu) (``diffusion_lab.oracle``).
"""

from __future__ import annotations

import math

from torch import Tensor

__all__ = ["sdedit_grid", "sdedit_start"]


def sdedit_grid(sigmas: Tensor, strength: float) -> Tensor:
    """The tail of the grid ``sigmas`` (descending, last 0) holding its last
    ceil(strength * n) steps; ValueError unless 0 < strength <= 1."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    steps = len(sigmas) - 1
    keep = max(1, math.ceil(strength * steps - 1e-9))
    return sigmas[steps - keep:]


def sdedit_start(y: Tensor, sigma: float, z: Tensor) -> Tensor:
    """y noised to ``sigma`` in sigma space: y + sigma z."""
    return y + sigma * z
