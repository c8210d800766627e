"""A copy of a dataset without its duplicates and near-duplicates (before the train/val split).

Duplicated training images are what diffusion models memorise (Somepalli et al. 2023; Carlini
et al. 2023, who find extracted images are mostly the heavily duplicated ones), and a copy of a
training image in the validation split makes held-out numbers flatter the model. Items are
visited in order; an item is dropped when an item kept before it lies within ``max_distance``
in RMS pixel distance,

    d(a, b) = sqrt(mean over pixels (a - b)^2)     (images in [-1, 1]: 0 <= d <= 2),

so of each group of near-copies the first one stays. ``max_distance=0`` drops exact duplicates
only. Wrap any dataset the way ``data.duplicates.with_duplicates`` does:

    dataset: {_target_: diffusion_lab.data.dedup.deduplicated, _partial_: true,
              source: {_target_: diffusion_lab.data.mnist5k.mnist5k, _partial_: true},
              max_distance: 0.05}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor

from diffusion_lab.data.arrays import ArrayDataset

log = logging.getLogger(__name__)


@torch.no_grad()
def keep_mask(x: Tensor, max_distance: float = 0.0, block: int = 1024) -> Tensor:
    """Bool (N,): True for the items :mod:`diffusion_lab.data.dedup` keeps (the first of each
    group of items within ``max_distance`` RMS distance of an earlier kept one)."""
    if not (isinstance(max_distance, (int, float)) and math.isfinite(max_distance)
            and max_distance >= 0):
        raise ValueError(f"dedup max_distance must be a finite number >= 0, got {max_distance!r}")
    flat = x.flatten(1).double()
    n, dim = flat.shape
    sq = (flat * flat).sum(1)
    limit = max_distance**2 * dim  # on squared Euclidean distance, with round-off slack below
    slack = 1e-9 * (sq.max().item() + 1.0)
    keep = torch.ones(n, dtype=torch.bool)
    for start in range(0, n, block):
        rows = flat[start:start + block]
        d2 = (rows * rows).sum(1, keepdim=True) - 2 * rows @ flat.T + sq  # (b, N)
        close = d2 <= limit + slack
        for i in range(len(rows)):
            item = start + i
            if keep[item]:
                later = close[i].clone()
                later[: item + 1] = False
                keep &= ~later
    return keep


def deduplicated(source: Callable[[], ArrayDataset] | ArrayDataset,
                 max_distance: float = 0.0) -> ArrayDataset:
    """``source`` (a dataset or a zero-argument callable returning one) without the items
    :func:`keep_mask` drops; logs how many were dropped."""
    data = source() if callable(source) else source
    keep = keep_mask(data.x, max_distance)
    dropped = int((~keep).sum())
    log.info("dedup (max RMS distance %g): dropped %d of %d items of %s", max_distance, dropped,
             len(keep), data.name)
    if dropped == 0:
        return data
    return ArrayDataset(data.x[keep], data.y[keep] if data.num_classes else None,
                        num_classes=data.num_classes, class_names=data.class_names,
                        name=f"{data.name} (dedup {max_distance:g}: -{dropped})", value_range=None)
