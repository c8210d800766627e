"""On-disk caches for evaluation artefacts: reference feature statistics (and the
atomic-write helper the classifier cache shares).

Reference statistics of the real data (mean and covariance of features) depend only on
(dataset, resolution, feature extractor), never on the model being evaluated, so they are
computed once and reused by every later evaluation::

    key = reference_stats_key("digits", 8, features.identity)
    stats = cached_reference_stats(cache_dir, key, lambda: stats_from_images(features, x_real))
    fid = fid_from_stats(stats, stats_from_images(features, x_fake))

Policy for an unreadable cache file (truncated write from another tool, disk error, an
older format): it is *derived* data, so we warn and recompute, then overwrite it
atomically. Files are written to a temporary file in the same directory and moved into
place with ``os.replace``, so concurrent readers never see a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from diffusion_lab.metrics.fid import FeatureStats

_STATS_FORMAT = 1


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: write ``<dir>/.tmp-*`` then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def try_load(path: Path, what: str) -> dict | None:
    """Load a cache payload (tensors and plain Python only); ``None`` with a warning if the
    file exists but cannot be read, ``None`` silently if it does not exist."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict):
            raise TypeError(f"expected a dict, found {type(payload).__name__}")
        return payload
    except Exception as err:  # noqa: BLE001 - any unreadable file: same policy
        warnings.warn(f"ignoring unreadable {what} cache {path} ({err!r}); recomputing",
                      RuntimeWarning, stacklevel=3)
        return None


def cache_filename(prefix: str, key: str) -> str:
    """A filesystem-safe, collision-free name: readable slug of ``key`` + its hash."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key).strip("_")[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{prefix}-{slug}-{digest}.pt"


def reference_stats_key(dataset: str, resolution: int | Sequence[int], extractor_id: str,
                        split: str = "train") -> str:
    """The cache key of reference stats: everything the statistics depend on."""
    res = "x".join(str(r) for r in resolution) if isinstance(resolution, Sequence) else resolution
    return f"{dataset}|{split}|res={res}|{extractor_id}"


def cached_reference_stats(cache_dir: str | os.PathLike, key: str,
                           compute_fn: Callable[[], FeatureStats]) -> FeatureStats:
    """Return the :class:`FeatureStats` cached under ``key``, calling ``compute_fn()`` (and
    saving its result atomically) only when no readable cache file exists.

    ``key`` must identify the dataset, resolution and feature extractor (see
    :func:`reference_stats_key`); the extractor identity matters because stats from two
    extractors (or two trainings of the same classifier) are not comparable.
    """
    path = Path(cache_dir) / cache_filename("stats", key)
    payload = try_load(path, "reference-stats")
    if payload is not None:
        try:
            if payload.get("format") != _STATS_FORMAT or payload.get("key") != key:
                raise ValueError("format or key mismatch")
            return FeatureStats.from_dict(payload["stats"])
        except (KeyError, ValueError, TypeError) as err:
            warnings.warn(f"ignoring invalid reference-stats cache {path} ({err!r}); recomputing",
                          RuntimeWarning, stacklevel=2)
    stats = compute_fn()
    if not isinstance(stats, FeatureStats):
        raise TypeError(f"compute_fn must return FeatureStats, got {type(stats).__name__}")
    atomic_save({"format": _STATS_FORMAT, "key": key, "stats": stats.to_dict()}, path)
    return stats
