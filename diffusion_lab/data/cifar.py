"""CIFAR-10 from the official "python version" pickles (Krizhevsky, 2009).

Layout: ``root/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (train, 50,000 images)
and ``test_batch`` (10,000). Each file is a pickled dict with ``b"data"``, a uint8 array
``(N, 3072)`` whose rows hold the red plane, then green, then blue (each 32x32, row-major),
and ``b"labels"``, a list of N ints in 0..9.

The pickles are read with a restricted unpickler that only rebuilds NumPy arrays and plain
Python containers, so a tampered file cannot run code. ``download=True`` fetches
``cifar-10-python.tar.gz`` into ``root``, checks its MD5 and extracts it safely.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.data.download import (
    download_url,
    extract_tar,
    md5sum,
    missing_files_error,
)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the NumPy globals needed to rebuild arrays."""

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("numpy.core"):  # NumPy 1.x pickles; NumPy 2 moved it to _core
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file -> ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``.

    Raises:
        ValueError: unreadable pickle or wrong contents; the message names the file.
    """
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        msg = f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})"
        raise ValueError(msg) from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {labels.shape} labels for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def _download_and_extract(root: Path) -> None:
    archive = root / Path(CIFAR10_URL).name
    if not (archive.is_file() and md5sum(archive) == CIFAR10_MD5):
        download_url(CIFAR10_URL, archive, CIFAR10_MD5)
    # extract next to the target, then move into place: other processes never see half a folder
    with tempfile.TemporaryDirectory(dir=root, prefix=".cifar-extract-") as tmp:
        extract_tar(archive, tmp)
        extracted = Path(tmp) / CIFAR10_FOLDER
        if not extracted.is_dir():
            raise ValueError(f"{archive}: archive has no {CIFAR10_FOLDER}/ folder")
        target = root / CIFAR10_FOLDER
        if _complete(target):  # another process finished first: keep its copy
            return
        shutil.rmtree(target, ignore_errors=True)  # a partial copy: the verified archive wins
        os.replace(extracted, target)


def _complete(folder: Path) -> bool:
    return all((folder / n).is_file() for names in CIFAR10_FILES.values() for n in names)


def cifar10(root: str | os.PathLike, split: str = "train", download: bool = False) -> ArrayDataset:
    """CIFAR-10: 32x32 RGB, shape (3, 32, 32), 10 classes, scaled by ``x / 127.5 - 1``."""
    if split not in CIFAR10_FILES:
        raise ValueError(f"cifar10: split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    names = CIFAR10_FILES[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        root.mkdir(parents=True, exist_ok=True)
        _download_and_extract(root)
    elif missing:
        raise missing_files_error(
            "CIFAR-10", missing, folder, CIFAR10_URL,
            how=f"download {CIFAR10_URL} (md5 {CIFAR10_MD5}) and extract it into {root.resolve()}",
        )
    batches = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    x = torch.from_numpy(images).float() / 127.5 - 1.0
    return ArrayDataset(
        x, torch.from_numpy(labels), num_classes=10, class_names=CIFAR10_CLASSES,
        name=f"cifar10[{split}]",
    )
