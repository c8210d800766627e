"""Crash-safe checkpoint files.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced,
then renamed over the destination (atomic on POSIX), so a kill during a write never
leaves the previous good checkpoint unreadable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not a diffusion-lab checkpoint."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint_file(path: str | os.PathLike, map_location="cpu") -> dict:
    """torch.load with a clear error naming the file when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated zip, pickle errors, ...
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from e


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO that writes atomically and reports unreadable files clearly."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_checkpoint_file(path, map_location=map_location or "cpu")


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)
    return path
