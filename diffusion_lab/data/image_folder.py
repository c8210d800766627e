"""Any folder of images, decoded once with Pillow and held in memory.

Every image is converted to RGB (``channels=3``) or greyscale (``channels=1``), resized so its
shorter side is ``image_size`` (bicubic) and centre-cropped to a square. The whole set is kept
in memory as float32 (``N * C * S * S * 4`` bytes: 10,000 RGB images at 64x64 take 0.5 GB),
which suits the sizes this project targets; larger sets call for a streaming dataset.

Layout: with ``class_subfolders=True`` each direct sub-folder of ``root`` is one class (class
ids follow the sorted folder names; files lying directly in ``root`` are ignored); with
``False`` every image below ``root`` is used, unlabeled (``y = 0``, ``num_classes = 0``).
Hidden files and folders (name starting with ".") are ignored.

Bad files: files whose extension is not in ``extensions`` are skipped; files with an image
extension that Pillow cannot decode are skipped too, and one warning reports how many files
were skipped and names an example of each kind. With ``strict=True`` an undecodable image
raises ``ValueError`` naming it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.data.download import DatasetNotFoundError

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
)
COLOR_MODES = {1: "L", 3: "RGB"}


def _visible_files(folder: Path) -> list[Path]:
    """All non-hidden files below ``folder`` (skipping hidden folders), sorted by path."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
    return sorted(files)


def load_image(path: Path, image_size: int, mode: str) -> np.ndarray:
    """Decode, convert, resize the shorter side to ``image_size``, centre-crop: (S, S[, C])."""
    with Image.open(path) as img:
        img = img.convert(mode)
    scale = image_size / min(img.size)
    w, h = max(image_size, round(img.width * scale)), max(image_size, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - image_size) // 2, (h - image_size) // 2
    return np.asarray(img.crop((left, top, left + image_size, top + image_size)))


def _try_load(path: Path, image_size: int, mode: str) -> np.ndarray | Exception:
    try:
        return load_image(path, image_size, mode)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return exc


def image_folder(
    root: str | os.PathLike,
    image_size: int = 64,
    channels: int = 3,
    class_subfolders: bool = True,
    strict: bool = False,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ArrayDataset:
    """Load a folder of images as ``(N, channels, image_size, image_size)`` in [-1, 1]."""
    root = Path(root)
    name = f"image_folder({root})"
    if channels not in COLOR_MODES:
        raise ValueError(f"{name}: channels must be 1 or 3, got {channels}")
    if image_size < 1:
        raise ValueError(f"{name}: image_size must be >= 1, got {image_size}")
    if not root.is_dir():
        raise DatasetNotFoundError(f"{name}: folder {root.resolve()} does not exist")

    if class_subfolders:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name[0] != ".")
        if not classes:
            raise ValueError(
                f"{name}: no class sub-folders found; put one folder per class in {root} "
                "or pass class_subfolders=False"
            )
        labelled = [(f, k) for k, c in enumerate(classes) for f in _visible_files(root / c)]
    else:
        classes = []
        labelled = [(f, 0) for f in _visible_files(root)]

    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    candidates = [(f, k) for f, k in labelled if f.suffix.lower() in exts]
    not_images = [f for f, _ in labelled if f.suffix.lower() not in exts]

    mode = COLOR_MODES[channels]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda fk: _try_load(fk[0], image_size, mode), candidates))
    good = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    corrupt = [candidates[i][0] for i, r in enumerate(results) if not isinstance(r, np.ndarray)]
    if corrupt and strict:
        exc = results[next(i for i, r in enumerate(results) if not isinstance(r, np.ndarray))]
        raise ValueError(f"{name}: cannot decode image {corrupt[0]} ({exc})") from exc
    if corrupt or not_images:
        parts = [f"{len(corrupt)} undecodable image(s) (e.g. {corrupt[0]})"] if corrupt else []
        if not_images:
            parts.append(f"{len(not_images)} non-image file(s) (e.g. {not_images[0]})")
        warnings.warn(
            f"{name}: skipped {len(corrupt) + len(not_images)} file(s): {', '.join(parts)}",
            stacklevel=2,
        )
    if not good:
        raise ValueError(f"{name}: no readable images with extensions {sorted(exts)} found")

    pixels = np.stack([results[i] for i in good]).reshape(len(good), image_size, image_size, -1)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (N, C, S, S)
    if not class_subfolders:
        return ArrayDataset(x.contiguous(), None, name=name)
    y = torch.tensor([candidates[i][1] for i in good], dtype=torch.long)
    return ArrayDataset(
        x.contiguous(), y, num_classes=len(classes), class_names=classes, name=name
    )
