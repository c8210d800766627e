"""fit_stage(cfg, build): the training lifecycle a separate stage (the autoencoder of latent
diffusion, the noisy classifier of classifier guidance) shares with the diffusion runs: resume
(``ckpt_path=...`` / ``resume=auto``, with the W&B run continued), seeding before the model is
built, atomic checkpoints and ``last.ckpt``, SIGTERM/SIGUSR1 checkpoint-and-stop (exit 75), the
run's own scalar record beside the configured logger, and a finished stage found finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.lit.final_checkpoint import FinalCheckpoint, final_step
from diffusion_lab.lit.process_group import DestroyProcessGroupAtExit
from diffusion_lab.lit.rng import TrainingRNG
from diffusion_lab.lit.signals import Preempted, Preemption
from diffusion_lab.loggers.run_record import RunRecordLogger
from diffusion_lab.tasks.build import (
    build_callbacks,
    build_datamodule,
    build_logger,
    config_to_dict,
)
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import AtomicCheckpointIO, atomic_copy, load_checkpoint_file
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.validate import check_finite, refused_as_config_error, validate_counts


def validate_stage_config(cfg: DictConfig, section: str,
                          build: Callable[[], L.LightningModule]) -> None:
    """A stage's checks before any work (one line each, exit 2 from the scripts): finite
    numbers, the step budget, ``resume``, then its module (``build()``; errors named after
    ``section``), data module and callbacks built once."""
    check_finite(cfg)
    validate_counts(cfg, "trainer.max_steps")
    if cfg.get("resume") not in (None, False, True, "auto"):
        raise ConfigError(f"resume must be auto or false, got {cfg.get('resume')!r}")
    with refused_as_config_error(section):
        build()
    with refused_as_config_error("data.module"):
        instantiate(cfg.data.module, _convert_="all")
    with refused_as_config_error("callbacks"):
        build_callbacks(cfg)


@dataclass
class StageRun:
    module: L.LightningModule
    datamodule: object
    run_dir: Path
    last: Path          # the stage's final checkpoint
    global_step: int
    seconds: float      # wall-clock of the fit


def fit_stage(cfg: DictConfig, build: Callable[[], L.LightningModule]) -> StageRun:
    """Fit the module ``build()`` makes (called after seeding) on ``cfg``'s data with
    ``cfg.trainer``; checked config assumed (the stage's own validation runs first)."""
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.output_root) / cfg.name,
                                  auto=bool(cfg.get("resume")), run_config=config_to_dict(cfg))
    wandb_run_id = load_checkpoint_file(ckpt_path, mmap=True).get("wandb_run_id") if ckpt_path else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg, encode=False)
    module = build()
    preemption = Preemption(cfg.paths.checkpoint_dir)
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    logger = build_logger(cfg, wandb_run_id=wandb_run_id)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=[TrainingRNG(), FinalCheckpoint(last), preemption,
                                DestroyProcessGroupAtExit(), *build_callbacks(cfg)],
        logger=[*([logger] if logger else []), RunRecordLogger(run_dir)],
        default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()])
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except Preempted as e:
        raise (preemption.error or e) from None
    finally:
        if logger and type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
    if ckpt_path and not last.exists():  # resumed from a finished run: nothing was left to do
        atomic_copy(ckpt_path, last)
    return StageRun(module, datamodule, run_dir, last, final_step(trainer),
                    round(time.perf_counter() - start, 1))
