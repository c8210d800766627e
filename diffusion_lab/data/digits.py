"""scikit-learn's bundled handwritten digits: 1,797 grey 8x8 images, 10 classes, offline.

The smallest real image dataset there is; a diffusion model learns it in minutes on a CPU.
Pixel values are integers 0..16, mapped to [-1, 1] by ``x / 8 - 1`` (0 -> -1, 16 -> 1).
Source: UCI "Optical Recognition of Handwritten Digits", shipped inside scikit-learn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab.data.arrays import ArrayDataset


def digits(root: str | None = None, image_size: int = 8) -> ArrayDataset:
    """Load the digits as an :class:`ArrayDataset` of shape ``(1, image_size, image_size)``.

    Args:
        root: ignored (the data ships with scikit-learn); accepted so every image source can
            be configured with the same ``root`` argument.
        image_size: side length; when not 8 the images are resized bilinearly (with
            antialiasing when shrinking). Interpolation is a convex combination of pixels, so
            values stay in [-1, 1].
    """
    if image_size < 1:
        raise ValueError(f"digits: image_size must be >= 1, got {image_size}")
    from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0  # (N,1,8,8)
    if image_size != 8:
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False,
            antialias=image_size < 8,
        ).clamp_(-1.0, 1.0)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    names = [str(n) for n in bunch.target_names]
    return ArrayDataset(x, y, num_classes=10, class_names=names, name="digits")
