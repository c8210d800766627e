"""MNIST and Fashion-MNIST from their official IDX files (reader written from the format spec).

IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 dimension sizes, then the
data in C order, big-endian. Dtype codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64. Files may be gzip-compressed (``.gz``).

File layout: the official names (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or ``.gz``) are looked up
in ``root/<folder>/raw`` (``MNIST/raw`` or ``FashionMNIST/raw``, the torchvision layout), then
in ``root`` itself. ``download=True`` saves the ``.gz`` files to ``root/<folder>/raw``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.data.download import download_from_mirrors, missing_files_error

IDX_DTYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset lives: folder name, mirrors, ``.gz`` file -> MD5, class names."""

    name: str
    folder: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]
    class_names: tuple[str, ...]


MNIST = IdxSource(
    name="MNIST",
    folder="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    class_names=tuple(str(i) for i in range(10)),
)

FASHION_MNIST = IdxSource(
    name="FashionMNIST",
    folder="FashionMNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or ``.gz``) into a native-endian NumPy array.

    Raises:
        ValueError: bad magic number, unknown dtype, truncated or oversized payload, or a
            corrupt gzip stream; the message names the file.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header (ndim={ndim}, {len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX payload is {len(raw) - header} bytes, expected {expected} for "
            f"dims {dims} (truncated or corrupt file)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_idx_dataset(
    source: IdxSource, root: str | os.PathLike, split: str = "train", download: bool = False
) -> ArrayDataset:
    """Load one split of an IDX image dataset as ``(N, 1, H, W)`` in [-1, 1] (``x/127.5 - 1``)."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"{source.name}: split must be 'train' or 'test', got {split!r}")
    raw_dir = Path(root) / source.folder / "raw"
    folders = [raw_dir, Path(root)]
    prefix = SPLIT_PREFIX[split]
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    paths = [_find(folders, s) for s in stems]
    missing = [s + ".gz" for s, p in zip(stems, paths, strict=True) if p is None]
    if missing and download:
        for name in missing:
            download_from_mirrors(source.mirrors, name, raw_dir, source.md5.get(name))
        paths = [_find(folders, s) for s in stems]
    elif missing:
        raise missing_files_error(source.name, missing, raw_dir, source.mirrors[0])

    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{source.name}: images {paths[0]} shaped {images.shape} do not match labels "
            f"{paths[1]} shaped {labels.shape}; expected (N, H, W) and (N,)"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected uint8 pixels, got {images.dtype}")
    x = torch.from_numpy(images).unsqueeze(1).float() / 127.5 - 1.0
    y = torch.from_numpy(labels.astype(np.int64))
    return ArrayDataset(
        x, y, num_classes=len(source.class_names), class_names=source.class_names,
        name=f"{source.name}[{split}]",
    )


def mnist(root: str | os.PathLike, split: str = "train", download: bool = False) -> ArrayDataset:
    """MNIST handwritten digits: 60,000 train / 10,000 test, shape (1, 28, 28), 10 classes."""
    return load_idx_dataset(MNIST, root, split, download)


def fashion_mnist(
    root: str | os.PathLike, split: str = "train", download: bool = False
) -> ArrayDataset:
    """Fashion-MNIST (Zalando): 60,000 train / 10,000 test, shape (1, 28, 28), 10 classes."""
    return load_idx_dataset(FASHION_MNIST, root, split, download)
