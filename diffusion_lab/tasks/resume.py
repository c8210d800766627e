"""Find the checkpoint to resume from.

``ckpt_path`` names one explicitly; ``resume=auto`` is for jobs that are started again with
the same command line after a pre-emption or a crash (a requeued SLURM job): it resumes from
the newest readable checkpoint of this experiment when there is one, and starts fresh
otherwise, with no change to the command. Either way an unreadable (truncated, corrupt)
checkpoint is skipped with a warning in favour of the next newest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

log = logging.getLogger(__name__)


def resolve_ckpt_path(ckpt_path: str | None, experiment_dir: Path, auto: bool = False) -> str | None:
    """Where to resume from.

    - ``None``: a fresh start, unless ``auto``, which acts as ``"last"`` but starts fresh
      quietly when this experiment has no checkpoint yet;
    - ``"last"``: the newest readable checkpoint among the runs of this experiment
      (``experiment_dir/*/checkpoints``, this run's own folder included, so a job that reuses
      its run directory finds its own checkpoints), or a fresh start with a warning when
      there is none;
    - a run directory: the newest readable checkpoint in its ``checkpoints/``;
    - a file: that checkpoint, checked readable now rather than deep inside ``fit``.
    """
    if ckpt_path in (None, "", "null") and not auto:
        return None
    if ckpt_path in (None, "", "null", "last"):
        candidates = [p for d in experiment_dir.glob("*/checkpoints") for p in d.glob("*.ckpt")]
        if auto and not candidates:
            log.info("resume=auto: no checkpoint of %s yet, starting fresh", experiment_dir)
            return None
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
        log.info("resuming from %s", path)
        return str(path)
    log.warning("no readable checkpoint found in %s: starting from scratch", where)
    return None
