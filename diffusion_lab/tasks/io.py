"""Crash-safe checkpoint files.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced,
then renamed over the destination (atomic on POSIX), so a kill during a write never
leaves the previous good checkpoint unreadable. A process killed mid-write leaves at most a
hidden ``.<name>.tmp-<pid>`` file, which no checkpoint search picks up and the next write into
that folder removes once its process is gone (and the file is over an hour old). Weights with NaN/inf
are never written: the write is refused with :class:`NonFiniteError`, so the newest checkpoint
on disk is always the last good one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from diffusion_lab.lit.nonfinite import NonFiniteError, first_nonfinite


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not a diffusion-lab checkpoint."""


STALE_TMP_SECONDS = 3600


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or unknowable): keep its file
    return True


def remove_stale_temporaries(folder: Path, now: float | None = None) -> list[Path]:
    """Delete ``.*.tmp-<pid>`` files left by killed writers: process gone, over an hour old."""
    now = time.time() if now is None else now
    removed = []
    for tmp in folder.glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        try:
            old = now - tmp.stat().st_mtime > STALE_TMP_SECONDS
        except FileNotFoundError:
            continue
        if pid.isdigit() and int(pid) != os.getpid() and old and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
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


def load_checkpoint_file(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """torch.load with a clear error naming the file when it is missing or corrupt.

    ``mmap=True`` maps the tensors instead of reading them: a cheap look at the metadata and
    the shapes (a truncated file still fails, its index being at the end).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as e:  # truncated zip, pickle errors, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {msg})") from e


def check_finite_weights(checkpoint: dict, path: str | os.PathLike) -> None:
    """Raise NonFiniteError naming the first weight tensor with NaN/inf values."""
    bad = first_nonfinite(checkpoint.get("state_dict", {}))
    if bad is not None:
        raise NonFiniteError(
            f"refusing to write checkpoint {path}: {bad[0]} has {bad[1]} NaN/inf values "
            "(the previous checkpoint is kept as the last good one)"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO that writes atomically and reports unreadable files clearly."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        check_finite_weights(checkpoint, path)
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
