"""Per-sample loss weights as a function of SNR_t = ab_t / (1 - ab_t).

A weighting is called as ``weighting(snr, prediction) -> weight`` (shape of ``snr``). The weight
multiplies the squared error of whatever the prediction class regresses (eps, x0 or v).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MinSNRWeighting", "UniformWeighting"]


class UniformWeighting:
    """w(snr) = 1: the plain "simple" loss of DDPM for the chosen target."""

    def __call__(self, snr: Tensor, prediction: object) -> Tensor:
        return torch.ones_like(snr)

    def __repr__(self) -> str:
        return "UniformWeighting()"


class MinSNRWeighting:
    """Min-SNR-gamma (Hang et al. 2023): the x0-space weight min(snr, gamma), expressed for the
    target the backbone regresses: eps -> min(snr, g)/snr, v -> min(snr, g)/(snr + 1),
    x0 -> min(snr, g).

    The prediction class supplies the conversion through ``prediction.min_snr_weight(snr, gamma)``.
    """

    def __init__(self, gamma: float = 5.0) -> None:
        if not gamma > 0:
            raise ValueError(f"min-SNR gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def __call__(self, snr: Tensor, prediction: object) -> Tensor:
        weight_fn = getattr(prediction, "min_snr_weight", None)
        if weight_fn is None:
            raise ValueError(
                f"{type(prediction).__name__} has no min_snr_weight(snr, gamma) method"
            )
        return weight_fn(snr, self.gamma)

    def __repr__(self) -> str:
        return f"MinSNRWeighting(gamma={self.gamma})"
