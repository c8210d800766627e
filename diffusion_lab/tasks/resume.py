"""Find the checkpoint to resume from."""

from __future__ import annotations

import logging
from pathlib import Path

from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

log = logging.getLogger(__name__)


def resolve_ckpt_path(ckpt_path: str | None, experiment_dir: Path, run_dir: Path) -> str | None:
    """Where to resume from.

    - ``None``: a fresh start;
    - ``"last"``: the newest readable checkpoint among the earlier runs of this experiment
      (``experiment_dir/*/checkpoints``), or a fresh start with a warning when there is none;
    - a run directory: the newest readable checkpoint in its ``checkpoints/``;
    - a file: that checkpoint, checked readable now rather than deep inside ``fit``.
    """
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        runs = [d for d in experiment_dir.glob("*/checkpoints") if d.parent != run_dir]
        candidates = [p for d in runs for p in d.glob("*.ckpt")]
        return newest_readable_checkpoint(candidates, where=str(experiment_dir))
    path = Path(ckpt_path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = newest_readable_checkpoint(list(folder.glob("*.ckpt")), where=str(folder))
        if found is None:
            raise CheckpointError(f"no readable checkpoint in {folder}")
        return found
    load_checkpoint_file(path)
    return str(path)


def newest_readable_checkpoint(candidates: list[Path], where: str) -> str | None:
    """The most recently written checkpoint that loads; unreadable ones are skipped with a warning."""
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            load_checkpoint_file(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        return str(path)
    log.warning("no checkpoint found in %s: starting from scratch", where)
    return None
