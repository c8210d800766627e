"""In-memory datasets: the one container every data source in diffusion-lab returns.

Contract (see ``diffusion_lab.data``):

* ``x`` is a float32 tensor ``(N, *shape)``: images ``(N, C, H, W)`` scaled to ``[-1, 1]``,
  or points ``(N, D)`` on roughly unit scale.
* ``y`` is a long tensor ``(N,)``. Unlabeled data uses ``y = 0`` everywhere and
  ``num_classes = 0``; the model ignores ``cond`` when ``num_classes == 0``. Batches are
  therefore always ``(x, y)`` tuples, never ``(x, None)``.

Batches are fetched with one tensor index per batch: ``ArrayDataset.__getitems__`` takes the
list of indices a ``DataLoader`` sampler produces and returns ``(x[idx], y[idx])``, and
:func:`passthrough_collate` hands that tuple on unchanged. There is no per-sample Python
work, so data loading is never the bottleneck and ``num_workers=0`` is the right default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

Batch = tuple[Tensor, Tensor]


def passthrough_collate(batch: Batch) -> Batch:
    """Collate function for :class:`ArrayDataset`: the batch is already stacked, return it."""
    return batch


class ArrayDataset(Dataset):
    """A validated pair of tensors ``x (N, ...)`` and ``y (N,)`` held in memory.

    Args:
        x: samples, any numeric dtype; stored as float32.
        y: integer labels ``(N,)`` or ``None`` for unlabeled data (stored as zeros).
        num_classes: number of classes; must be 0 when ``y`` is ``None``. When labels are
            given and ``num_classes`` is ``None`` it is inferred as ``max(y) + 1``.
        class_names: optional names, one per class.
        name: dataset name used in error messages.
        value_range: ``(lo, hi)`` every value must lie in (images: ``(-1, 1)``), or ``None``
            to skip the range check (2-D point data).

    Raises:
        ValueError: empty data, NaN/inf, values outside ``value_range``, or labels that do not
            match ``x`` / ``num_classes``. The message names the dataset.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        name: str = "dataset",
        value_range: tuple[float, float] | None = (-1.0, 1.0),
    ) -> None:
        x = torch.as_tensor(x).to(torch.float32)
        if x.ndim < 2:
            raise ValueError(f"{name}: x must be shaped (N, ...), got shape {tuple(x.shape)}")
        if len(x) == 0:
            raise ValueError(f"{name}: the dataset is empty (0 samples)")
        _check_values(x, name, value_range)
        y, num_classes = _check_labels(y, len(x), num_classes, name)
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != num_classes:
                raise ValueError(
                    f"{name}: {len(class_names)} class_names for num_classes={num_classes}"
                )
        self.x, self.y = x, y
        self.num_classes = num_classes
        self.class_names = class_names
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape, e.g. ``(1, 28, 28)`` or ``(2,)``."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> Batch:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: Sequence[int] | Tensor) -> Batch:
        """Whole-batch fetch used by ``DataLoader``: one tensor index instead of N lookups."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.x[idx], self.y[idx]

    def subset(self, indices: Sequence[int] | Tensor) -> ArrayDataset:
        """A new dataset holding ``x[indices], y[indices]`` with the same metadata."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if idx.numel() == 0:
            raise ValueError(f"{self.name}: subset with 0 indices would be empty")
        new = object.__new__(ArrayDataset)  # already validated: skip the checks
        new.x, new.y = self.x[idx], self.y[idx]
        new.num_classes, new.class_names, new.name = self.num_classes, self.class_names, self.name
        return new

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, shape={self.shape}, "
            f"num_classes={self.num_classes})"
        )


def _check_values(x: Tensor, name: str, value_range: tuple[float, float] | None) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: data contains {bad} NaN/inf values")
    if value_range is None:
        return
    lo, hi = value_range
    x_min, x_max = float(x.min()), float(x.max())
    if x_min < lo or x_max > hi:
        raise ValueError(
            f"{name}: values must lie in [{lo}, {hi}] after scaling, got [{x_min:.4g}, {x_max:.4g}]"
        )


def _check_labels(
    y: Tensor | None, n: int, num_classes: int | None, name: str
) -> tuple[Tensor, int]:
    if y is None:
        if num_classes not in (None, 0):
            raise ValueError(f"{name}: num_classes={num_classes} given but no labels (y=None)")
        return torch.zeros(n, dtype=torch.long), 0
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name}: labels must be integers, got dtype {y.dtype}")
    y = y.to(torch.long)
    if y.shape != (n,):
        raise ValueError(f"{name}: labels shaped {tuple(y.shape)}, expected ({n},)")
    if num_classes is None:
        num_classes = int(y.max()) + 1
    if num_classes < 0:
        raise ValueError(f"{name}: num_classes must be >= 0, got {num_classes}")
    if num_classes == 0:
        if bool((y != 0).any()):
            raise ValueError(f"{name}: unlabeled data (num_classes=0) must use y = 0")
    elif int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(
            f"{name}: labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]"
        )
    return y, num_classes
