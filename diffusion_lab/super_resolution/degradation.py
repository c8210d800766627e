"""The degradation of super-resolution and its exact inverse on the consistent subspace.

    A x = avg_pool_f(x)          (each low-resolution pixel the mean of an f x f block)
    A^+ y = nearest_up_f(y)      (A A^+ = I; P = A^+ A projects onto block-constant images)

Every image x splits as x = P x + (I - P) x: P x = A^+ A x is fixed by y = A x, and super-
resolution is the inference of the block-detail (I - P) x.

Noise-conditioning augmentation (Ho et al. 2022, cascaded diffusion models) conditions the model
on y_s = y + s e, e ~ N(0, I), and on s: trained over s ~ U[0, s_max], it learns to trust y less
as s grows, so a base model's imperfect samples (y off the data manifold) can be fed at a chosen s.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from diffusion_lab.types import append_dims


def check_factor(image_size: int, factor: int) -> int:
    """``factor`` as an int, or ValueError: an integer >= 2 that divides ``image_size``."""
    if isinstance(factor, bool) or int(factor) != factor or factor < 2:
        raise ValueError(f"the super-resolution factor must be an integer >= 2, got {factor!r}")
    if image_size % int(factor):
        raise ValueError(f"image size {image_size} is not divisible by the factor {factor}")
    return int(factor)


def downsample(x: Tensor, factor: int) -> Tensor:
    """y = A x: the mean of each ``factor`` x ``factor`` block, (B, C, H, W) -> (B, C, H/f, W/f)."""
    return F.avg_pool2d(x, factor)


def upsample_nearest(y: Tensor, factor: int) -> Tensor:
    """A^+ y: each low-resolution pixel repeated over its block (the minimum-norm x with A x = y)."""
    return F.interpolate(y, scale_factor=factor, mode="nearest")


def upsample_bicubic(y: Tensor, factor: int) -> Tensor:
    """Bicubic interpolation to the high resolution, clamped to [-1, 1]: the classical baseline."""
    return F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


def block_detail(x: Tensor, factor: int) -> Tensor:
    """(I - P) x = x - A^+ A x: what the low-resolution image does not determine."""
    return x - upsample_nearest(downsample(x, factor), factor)


def augment(y: Tensor, level: Tensor, noise: Tensor) -> Tensor:
    """y_s = y + s e: ``level`` s (B,) per image, ``noise`` e ~ N(0, I) shaped like y."""
    return y + append_dims(level.to(y.dtype), y.ndim) * noise.to(y.dtype)
