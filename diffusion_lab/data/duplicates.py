"""A copy of a dataset in which a few images are repeated many times (memorisation studies).

``count`` images, drawn once with ``seed``, are appended ``times`` times each, so the data holds
N + count * times items and each chosen image appears ``times + 1`` times. A diffusion model
trained on it tends to reproduce those images verbatim (Somepalli et al. 2023; Carlini et al.
2023), which the memorisation diagnostic (``diffusion_lab.diagnostics.memorization``) flags.

    dataset: {_target_: diffusion_lab.data.duplicates.with_duplicates, _partial_: true,
              source: {_target_: diffusion_lab.data.mnist5k.mnist5k, _partial_: true},
              count: 4, times: 300}
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lab.data.arrays import ArrayDataset


def duplicated_indices(n: int, count: int, seed: int = 0) -> torch.Tensor:
    """The ``count`` distinct indices in [0, n) that get repeated (fixed by ``seed``)."""
    if not 0 <= count <= n:
        raise ValueError(f"duplicate count must be in [0, {n}], got {count}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count]


def with_duplicates(source: Callable[[], ArrayDataset] | ArrayDataset, count: int = 4,
                    times: int = 300, seed: int = 0) -> ArrayDataset:
    """``source`` (a dataset or a zero-argument callable returning one) with ``count`` of its
    items appended ``times`` times each; ``count=0`` or ``times=0`` returns it unchanged."""
    if isinstance(times, bool) or int(times) != times or times < 0:
        raise ValueError(f"duplicate times must be an integer >= 0, got {times}")
    data = source() if callable(source) else source
    idx = duplicated_indices(len(data), int(count), seed)
    if count == 0 or times == 0:
        return data
    extra = idx.repeat(int(times))
    return ArrayDataset(torch.cat([data.x, data.x[extra]]), torch.cat([data.y, data.y[extra]]),
                        num_classes=data.num_classes, class_names=data.class_names,
                        name=f"{data.name}+{count}x{times} duplicates",
                        value_range=None)  # copies of checked values (2-D points have no range)
