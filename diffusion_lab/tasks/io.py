"""Crash-safe checkpoint files.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced,
then renamed over the destination (atomic on POSIX), so a kill during a write never
leaves the previous good checkpoint unreadable. A process killed mid-write leaves at most a
hidden ``.<name>.tmp-<pid>`` file, which no checkpoint search picks up and the next write into
that folder removes once its process is gone (and the file is over an hour old). Weights with NaN/inf
are never written: the write is refused with :class:`NonFiniteError`, so the newest checkpoint
on disk is always the last good one.

Opening a checkpoint never runs code from it: files are read with ``torch.load(weights_only=True)``,
which rebuilds tensors, plain containers, strings and numbers and refuses any other pickled
object (a class, a function, a ``__reduce__`` payload) before building it. The only other types
allowed are the numpy array pieces of the saved random-number state (:data:`SAFE_GLOBALS`).
A full disk or a read-only folder fails the write with one line (:class:`CheckpointError`); the
previous checkpoint is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from diffusion_lab.lit.nonfinite import NonFiniteError, first_nonfinite


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not a diffusion-lab checkpoint."""


STALE_TMP_SECONDS = 3600

# numpy's global RNG state (lit/rng.py) is a uint32 array: the one non-torch type checkpoints hold.
_np_core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
SAFE_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), _np_core.multiarray._reconstruct]


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


def _atomic_write(path: Path, write) -> Path:
    """``write(f)`` into a temporary file beside ``path``, fsync, rename over ``path``, fsync the
    folder. On any error the temporary file is removed and ``path`` is left as it was; an OSError
    (disk full, read-only folder, quota) becomes a one-line :class:`CheckpointError`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise CheckpointError(f"cannot write {path}: {reason} (the previous file is kept)") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    with contextlib.suppress(OSError):
        remove_stale_temporaries(path.parent)
    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_copy(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Copy ``source`` to ``path`` with the same guarantees as :func:`atomic_torch_save`."""
    return _atomic_write(Path(path), lambda f: f.write(Path(source).read_bytes()))


def load_checkpoint_file(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """torch.load with a clear error naming the file when it is missing or corrupt.

    ``mmap=True`` maps the tensors instead of reading them: a cheap look at the metadata and
    the shapes (a truncated file still fails, its index being at the end).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:  # weights_only refused a pickled object, or garbage
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(e))
        if found is None:
            raise CheckpointError(f"checkpoint {path} is unreadable (not a torch checkpoint)") from e
        raise CheckpointError(
            f"checkpoint {path} holds a pickled {found.group(1)}, which could run code: refused "
            "(only tensors and plain values are loaded; see the README on checkpoints from elsewhere)"
        ) from e
    except Exception as e:  # truncated zip, corrupt data, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {msg})") from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} is unreadable (a {type(checkpoint).__name__}, not a dict)")
    return checkpoint


def load_stage_weights(model, checkpoint: dict, prefix: str, path, what: str) -> None:
    """Load the ``prefix``-ed entries of a stage checkpoint's state dict (``autoencoder.``,
    ``classifier.``) into ``model``; CheckpointError (one line) when they do not fit it."""
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit the {what} its config builds "
                              f"({str(e).splitlines()[0]})") from e


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
    """Write ``obj`` as JSON with the same guarantees as checkpoints (fsync, rename, no temporary
    file left behind on error)."""
    text = json.dumps(obj, indent=2, default=str).encode()
    return _atomic_write(Path(path), lambda f: f.write(text))
