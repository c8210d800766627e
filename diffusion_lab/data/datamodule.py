"""``DiffusionDataModule``: one in-memory dataset, a fixed train/val split, plain DataLoaders.

Hydra wiring: pass the dataset as a zero-argument callable (``_partial_: true``) so nothing is
loaded while the config is composed; the datamodule calls it in ``prepare_data`` / ``setup``
(or on first access to ``num_classes`` / ``shape`` / ``train_set`` / ``val_set``)::

    data:
      _target_: diffusion_lab.data.datamodule.DiffusionDataModule
      dataset: {_target_: diffusion_lab.data.digits.digits, _partial_: true}
      batch_size: 128

Batches are ``(x, y)`` tuples fetched with one tensor index each (see ``arrays.py``).
``batch_size`` is **per device**: under DDP with W processes one optimiser step sees
``W * batch_size`` samples. The loaders are plain ``torch.utils.data.DataLoader`` objects so
Lightning can swap in a ``DistributedSampler``.

Loading under DDP: Lightning runs ``prepare_data`` on local rank 0 first (which downloads when
the source has ``download=True`` and keeps the loaded set to avoid loading twice), then
``setup`` on every rank, which loads the now-present files.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from diffusion_lab.data.arrays import ArrayDataset, passthrough_collate

DatasetSource = ArrayDataset | Callable[[], ArrayDataset]


class DiffusionDataModule(LightningDataModule):
    """Split an :class:`ArrayDataset` into train/val and serve it in batches.

    Args:
        dataset: an ``ArrayDataset`` or a zero-argument callable returning one.
        batch_size: samples per batch per device (>= 1).
        val_fraction: share of samples held out for validation, in [0, 1). With 0 there is no
            validation set and ``val_dataloader`` returns an empty list. Otherwise at least
            one sample is held out.
        num_workers: DataLoader worker processes; 0 is best for in-memory tensors.
        seed: fixes the train/val split (identical in every run with the same seed and data)
            and seeds the shuffling generator of the training loader.
        drop_last: drop the last incomplete training batch.
    """

    def __init__(
        self,
        dataset: DatasetSource,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        if not (isinstance(dataset, ArrayDataset) or callable(dataset)):
            raise TypeError(
                f"dataset must be an ArrayDataset or a zero-argument callable, got {dataset!r}"
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self._source = dataset
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self._full: ArrayDataset | None = None
        self._train: ArrayDataset | None = None
        self._val: ArrayDataset | None = None
        self.train_indices: Tensor | None = None  # positions in the full dataset, after setup
        self.val_indices: Tensor | None = None

    # -- loading and splitting ---------------------------------------------------------------
    def _load(self) -> ArrayDataset:
        if self._full is None:
            data = self._source if isinstance(self._source, ArrayDataset) else self._source()
            if not isinstance(data, ArrayDataset):
                raise TypeError(f"dataset callable returned {type(data).__name__}, "
                                 "expected an ArrayDataset")
            self._full = data
        return self._full

    def prepare_data(self) -> None:
        self._load()

    def setup(self, stage: str | None = None) -> None:
        if self._train is not None:
            return
        full = self._load()
        n = len(full)
        n_val = 0 if self.val_fraction == 0 else max(1, round(n * self.val_fraction))
        if n - n_val < 1:
            raise ValueError(f"{full.name}: {n} samples leave none for training "
                             f"with val_fraction={self.val_fraction}")
        if self.drop_last and n - n_val < self.batch_size:
            raise ValueError(
                f"{full.name}: {n - n_val} training samples < batch_size={self.batch_size} "
                "with drop_last=True would give zero batches; lower batch_size"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        self.val_indices = perm[:n_val].sort().values
        self.train_indices = perm[n_val:].sort().values
        self._val = full.subset(self.val_indices) if n_val else None
        self._train = full.subset(self.train_indices)

    @property
    def train_set(self) -> ArrayDataset:
        self.setup()
        return self._train

    @property
    def val_set(self) -> ArrayDataset | None:
        """The validation split, or ``None`` when ``val_fraction == 0``."""
        self.setup()
        return self._val

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for unlabeled data)."""
        return self._load().num_classes

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape, e.g. ``(1, 8, 8)``."""
        return self._load().shape

    @property
    def class_names(self) -> list[str] | None:
        return self._load().class_names

    # -- loaders -----------------------------------------------------------------------------
    def _loader(self, data: ArrayDataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            collate_fn=passthrough_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return self._loader(self.val_set, shuffle=False, drop_last=False)

    def real_batch(self, n: int, split: str = "val", seed: int = 0) -> Tensor:
        """``n`` distinct real images ``(n, *shape)`` drawn without replacement from a split.

        Deterministic given ``seed``. Raises ``ValueError`` when the split has fewer than
        ``n`` samples or does not exist (``split="val"`` with ``val_fraction == 0``).
        """
        sets = {"train": self.train_set, "val": self.val_set}
        if split not in sets:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        data = sets[split]
        if data is None:
            raise ValueError("there is no validation split (val_fraction=0); use split='train'")
        if not 1 <= n <= len(data):
            raise ValueError(f"real_batch: n={n} must lie in [1, {len(data)}] for split {split!r}")
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
        return data.x[idx]
