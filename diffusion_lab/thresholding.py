"""Dynamic thresholding of the predicted x0 (Saharia et al. 2022, Imagen, section 2.3).

Static clipping keeps x0_hat in [-1, 1] by clamping, which at large guidance weights flattens
every pixel the guided prediction pushes past the range into a saturated block. Dynamic
thresholding picks, per sample, s = max(1, quantile_p(|x0_hat|)) and returns

    x0 = clamp(x0_hat, -s, s) / s,

so a prediction within [-1, 1] at the p-quantile is only clipped (as statically), and one that
overshoots is clipped at its own p-quantile and scaled back into range: fewer saturated pixels,
structure kept. p = 0.995 in the paper; diffusers' ``thresholding=True`` with
``dynamic_thresholding_ratio``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["check_threshold_percentile", "dynamic_threshold", "dynamic_threshold_x0"]


def check_threshold_percentile(p) -> float:
    """``p`` as a float in (0, 1]; ValueError otherwise."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) <= 1.0:
        raise ValueError(f"guidance.dynamic_threshold must be a percentile in (0, 1] (Imagen: "
                         f"0.995) or null, got {p!r}")
    return float(p)


def dynamic_threshold_x0(x0: Tensor, percentile: float, floor: float = 1.0) -> Tensor:
    """clamp(x0, -s, s) / s with s = max(floor, quantile_percentile(|x0|)) per sample."""
    s = torch.quantile(x0.detach().flatten(1).abs().float(), percentile, dim=1)
    s = s.clamp(min=floor).to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def dynamic_threshold(denoiser: Callable, percentile: float, floor: float = 1.0) -> Callable:
    """The denoiser with :func:`dynamic_threshold_x0` applied to its output."""

    def thresholded(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        return dynamic_threshold_x0(denoiser(x, sigma, cond), percentile, floor)

    return thresholded
