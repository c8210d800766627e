"""Find the checkpoint to resume from.

``ckpt_path`` names one explicitly; ``resume=auto`` is for jobs that are started again with
the same command line after a pre-emption or a crash (a requeued SLURM job): it resumes from
the newest readable checkpoint of this experiment when there is one, and starts fresh
otherwise, with no change to the command. Either way an unreadable (truncated, corrupt)
checkpoint is skipped with a warning in favour of the next newest.

Candidates are the periodic and final checkpoints (``<run>/checkpoints/*.ckpt``) and the ones
Lightning writes on SIGUSR1 under SLURM auto-requeue (``<run>/hpc_ckpt_<n>.ckpt``). When
searching (``resume=auto``, ``ckpt_path=last``) a checkpoint whose stored config trained a
different model (another schedule, objective, backbone, data, optimizer, seed, number of
processes: another run with the same ``name``) is skipped with a warning naming the first difference; a checkpoint
named explicitly must at least share the schedule and the objective.
"""

from __future__ import annotations

import logging
from pathlib import Path

from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

log = logging.getLogger(__name__)

# What makes two runs the same training (a requeued job has them all equal); the rest of the
# config (step budget, logging, callbacks, evaluation, paths) may change between resumes.
TRAINING_KEYS = ("seed", "schedule", "objective", "backbone", "data", "module", "autoencoder",
                 "guidance.label_dropout",
                 "trainer.devices", "trainer.num_nodes", "trainer.accumulate_grad_batches")
# What an explicitly named checkpoint must share with this run: otherwise training continues
# under another noise process or target, silently.
PROCESS_KEYS = ("schedule", "objective")
# how the same computation runs (compiled or not, activations stored or recomputed), and
# where an autoencoder lies (it is compared by its weights, autoencoder.identity)
IGNORED = ("data.module.num_workers", "module.compile", "module.compile_mode",
           "module.compile_sampling_mode", "module.compile_backend", "backbone.checkpointing",
           "autoencoder.path")


def _leaves(node, where: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{where}.{key}" if where else str(key))
    else:
        yield where, node


def _select(config: dict, key: str):
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def config_difference(stored: dict | None, mine: dict, keys=TRAINING_KEYS) -> str | None:
    """The first ``key: A there, B here`` among ``keys`` (one line), or None when they agree."""
    if not isinstance(stored, dict):
        return "no diffusion_lab_config: not written by diffusion-lab"
    for key in keys:
        if _select(stored, key) is None or _select(mine, key) is None:
            continue
        theirs, ours = dict(_leaves(_select(stored, key), key)), dict(_leaves(_select(mine, key), key))
        # a key only one side has (a config from another version) is not a difference
        for leaf in sorted(set(theirs) & set(ours)):
            if leaf not in IGNORED and theirs[leaf] != ours[leaf]:
                return f"{leaf}: {theirs.get(leaf)!r} in the checkpoint, {ours.get(leaf)!r} in this run"
    return None


def run_checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoints: ``checkpoints/*.ckpt`` and Lightning's SLURM ``hpc_ckpt_*.ckpt``."""
    return [*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]


def resolve_ckpt_path(ckpt_path: str | None, experiment_dir: Path, auto: bool = False,
                      run_config: dict | None = None) -> str | None:
    """Where to resume from.

    - ``None``: a fresh start, unless ``auto``, which acts as ``"last"`` but starts fresh
      quietly when this experiment has no checkpoint yet;
    - ``"last"``: the newest readable checkpoint of this run's training (``run_config``)
      among the runs of this experiment (``experiment_dir/*/``, this run's own folder
      included, so a job that reuses its run directory finds its own checkpoints), or a fresh
      start with a warning when there is none;
    - a run directory: the newest readable checkpoint in it;
    - a file: that checkpoint, checked readable now rather than deep inside ``fit``.
    """
    if ckpt_path in (None, "", "null") and not auto:
        return None
    if ckpt_path in (None, "", "null", "last"):
        candidates = [p for d in experiment_dir.glob("*/") for p in run_checkpoints(d)]
        if auto and not candidates:
            log.info("resume=auto: no checkpoint of %s yet, starting fresh", experiment_dir)
            return None
        return newest_readable_checkpoint(candidates, where=str(experiment_dir), run_config=run_config)
    path = Path(ckpt_path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = newest_readable_checkpoint([*folder.glob("*.ckpt"), *path.glob("hpc_ckpt_*.ckpt")],
                                           where=str(folder))
        if found is None:
            raise CheckpointError(f"no readable checkpoint in {folder}")
        path = Path(found)
    ckpt = load_checkpoint_file(path, mmap=True)
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} has no state_dict: not a training checkpoint")
    if run_config is not None:
        differs = config_difference(ckpt.get("diffusion_lab_config"), run_config, PROCESS_KEYS)
        if differs:
            raise CheckpointError(f"{path} was trained under another process ({differs}): not resumed")
    return str(path)


def newest_readable_checkpoint(candidates: list[Path], where: str, run_config: dict | None = None) -> str | None:
    """The most recently written checkpoint that loads (and, given ``run_config``, was written
    by the same training); others are skipped with a warning."""
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            ckpt = load_checkpoint_file(path, mmap=True)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        if not isinstance(ckpt.get("state_dict"), dict):
            log.warning("skipping %s: no state_dict, not a training checkpoint", path)
            continue
        differs = run_config and config_difference(ckpt.get("diffusion_lab_config"), run_config)
        if differs:
            log.warning("skipping %s: another run's checkpoint (%s)", path, differs)
            continue
        log.info("resuming from %s", path)
        return str(path)
    log.warning("no readable checkpoint found in %s: starting from scratch", where)
    return None
