"""Latents as images: each (C, h, w) latent becomes one grey tile of its channels side by side
in a near-square mosaic, values / 3 (unit-variance latents mostly lie in [-3, 3]) clipped to
[-1, 1], so x_t strips can show what the latent model itself sees."""

from __future__ import annotations

import math

import torch


def latent_mosaic(z: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, 1, rows * h, cols * w), cols = ceil(sqrt(C)); empty cells are 0."""
    n, c, h, w = z.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    padded = torch.zeros(n, rows * cols, h, w, dtype=z.dtype)
    padded[:, :c] = (z.detach().cpu() / 3.0).clamp(-1.0, 1.0)
    return padded.view(n, rows, cols, h, w).permute(0, 1, 3, 2, 4).reshape(n, 1, rows * h, cols * w)
