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
``W * batch_size`` samples.

Resumable data order: the training order of epoch ``e`` is a fixed function of ``(seed, e)``
(:class:`ResumableSampler`, a ``DistributedSampler`` that also serves the single-process case,
so Lightning keeps it under DDP instead of injecting its own), and the training loader
(:class:`ResumableLoader`) counts the batches it has handed out this epoch. Lightning stores
that count in checkpoints (its stateful-dataloader protocol, ``state_dict`` /
``load_state_dict``); on resume the loader skips those batches (by index, without loading
them), so a resumed run sees exactly the batches the uninterrupted run would have seen. Under
DDP each rank skips its own shard's batches; resuming needs the same number of processes and
the same ``batch_size`` (otherwise the shards differ and a warning says the order restarts at
the epoch's beginning).

Loading under DDP: Lightning runs ``prepare_data`` on local rank 0 first (which downloads when
the source has ``download=True`` and keeps the loaded set to avoid loading twice), then
``setup`` on every rank, which loads the now-present files.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler

from diffusion_lab.data.arrays import ArrayDataset, passthrough_collate

DatasetSource = ArrayDataset | Callable[[], ArrayDataset]
log = logging.getLogger(__name__)


class ResumableSampler(DistributedSampler):
    """This rank's share of a permutation fixed by ``(seed, epoch)``.

    ``start = n`` makes the next pass begin at this rank's ``n``-th index (once).
    """

    def __init__(self, dataset, *, seed: int, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        return itertools.islice(super().__iter__(), start, None)


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`ResumableSampler` that knows its position in the epoch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seed = self.sampler.seed
        self.batches_this_epoch = 0
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches already seen)

    def __iter__(self):
        # A generator: this runs at the first batch, after Lightning's set_epoch.
        start = 0
        if self._resume_at is not None:
            (epoch, start), self._resume_at = self._resume_at, None
            if epoch != self.sampler.epoch:
                log.warning("data order: saved position is in epoch %d but training resumes in "
                            "epoch %d; it starts at the epoch's beginning", epoch, self.sampler.epoch)
                start = 0
        self.batches_this_epoch = start
        self.sampler.start = start * self.batch_size
        if self.generator is not None:  # worker seeds: a function of (seed, epoch) as well
            self.generator.manual_seed(self.seed + self.sampler.epoch)
        for batch in super().__iter__():
            self.batches_this_epoch += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.sampler.epoch, "batches": self.batches_this_epoch,
                "batch_size": self.batch_size, "num_replicas": self.sampler.num_replicas}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["batch_size"], state["num_replicas"]) != (self.batch_size, self.sampler.num_replicas):
            log.warning(
                "data order: checkpoint was written with batch_size=%s on %s process(es), this "
                "run uses %s on %s; the interrupted epoch restarts from its beginning",
                state["batch_size"], state["num_replicas"], self.batch_size,
                self.sampler.num_replicas,
            )
            return
        self._resume_at = (state["epoch"], state["batches"])


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
            and the training order of every epoch.
        drop_last: drop the last incomplete training batch.
        dedup: None, or drop duplicates and near-duplicates (RMS pixel distance <= dedup; 0:
            exact copies only) before the split (``data.dedup``), so no copy of a training
            image sits in the validation split either.
    """

    def __init__(
        self,
        dataset: DatasetSource,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = True,
        dedup: float | None = None,
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
        if dedup is not None and (isinstance(dedup, bool) or not isinstance(dedup, (int, float))
                                  or not math.isfinite(dedup) or dedup < 0):
            raise ValueError(f"dedup must be null or a finite RMS distance >= 0, got {dedup!r}")
        self._source = dataset
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.dedup = dedup
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
            if self.dedup is not None:
                from diffusion_lab.data.dedup import deduplicated

                data = deduplicated(data, self.dedup)
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
    def _loader_kwargs(self, drop_last: bool) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "drop_last": drop_last,
            "collate_fn": passthrough_collate,
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            # the loader's own generator seeds workers: the global random stream is not touched
            "generator": torch.Generator().manual_seed(self.seed),
        }

    def train_dataloader(self) -> ResumableLoader:
        trainer = getattr(self, "trainer", None)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        sampler = ResumableSampler(self.train_set, seed=self.seed, num_replicas=replicas,
                                   rank=rank, drop_last=self.drop_last)
        return ResumableLoader(self.train_set, sampler=sampler, **self._loader_kwargs(self.drop_last))

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, shuffle=False, **self._loader_kwargs(drop_last=False))

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
