"""Image grids as PNG, without torchvision."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float images (B, C, H, W) -> uint8 (B, H, W, C) in [0, 255]."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(x: torch.Tensor, nrow: int, padding: int = 1, upscale: int = 1) -> np.ndarray:
    """Tile (B, C, H, W) images in [-1, 1] into one uint8 (H', W', C) array, ``nrow`` per row."""
    imgs = to_uint8(x)
    b, h, w, c = imgs.shape
    if upscale > 1:
        imgs = imgs.repeat(upscale, axis=1).repeat(upscale, axis=2)
        h, w = h * upscale, w * upscale
    ncol = min(nrow, b)
    nrows = -(-b // ncol)
    grid = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), 255, np.uint8
    )
    for i in range(b):
        r, col = divmod(i, ncol)
        y0, x0 = padding + r * (h + padding), padding + col * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = imgs[i]
    return grid


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 (H, W, C) array as PNG atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def save_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int, upscale: int = 1) -> Path:
    return save_png(make_grid(x, nrow=nrow, upscale=upscale), path)
