"""train(cfg): validate, build, fit, checkpoint, evaluate, summarise.

Resuming (``ckpt_path=...`` or ``resume=auto``) restores everything the checkpoint holds:
weights, EMA, optimizer, LR schedule, grad scaler, global step, the random streams of every
rank (``lit/rng.py``), the position in the data order (``data/datamodule.py``) and the W&B
run id, so a run killed and resumed ends with the weights of the run never interrupted.
SIGTERM/SIGUSR1 checkpoint and stop (``lit/signals.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, open_dict

from diffusion_lab.latent.stage import (
    is_latent,
    log_latent_scale,
    make_latent_config,
    run_autoencoder_stage,
)
from diffusion_lab.lit.final_checkpoint import STEP_KEY, FinalCheckpoint, final_step
from diffusion_lab.lit.generate import process_group_size
from diffusion_lab.lit.process_group import DestroyProcessGroupAtExit
from diffusion_lab.lit.rng import TrainingRNG
from diffusion_lab.lit.signals import Preempted, Preemption
from diffusion_lab.loggers.run_record import RunRecordLogger
from diffusion_lab.tasks.build import (
    build_callbacks,
    build_datamodule,
    build_logger,
    build_module,
    check_checkpoint_fits,
    config_to_dict,
)
from diffusion_lab.tasks.io import (
    AtomicCheckpointIO,
    atomic_copy,
    atomic_write_json,
    load_checkpoint_file,
)
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.validate import validate_train_config

log = logging.getLogger(__name__)


def resolve_auto_precision(cfg: DictConfig) -> None:
    """``trainer.precision=auto``: bf16-mixed where bf16 is native, 32-true elsewhere
    (``utils.hardware.auto_precision``); the run config (and so the checkpoint) records the
    precision chosen."""
    if str(cfg.trainer.get("precision")) == "auto":
        from diffusion_lab.utils.hardware import auto_precision

        with open_dict(cfg):
            cfg.trainer.precision = auto_precision(str(cfg.trainer.get("accelerator", "cpu")))
        log.info("trainer.precision=auto: %s on this machine", cfg.trainer.precision)


def train(cfg: DictConfig) -> dict:
    """Run one training job described by ``cfg``; returns the final metrics."""
    if cfg.get("distill"):  # stage=distill: the teacher's model and data, from its checkpoint
        from diffusion_lab.distill.build import adopt_teacher_config

        adopt_teacher_config(cfg)
    latent = is_latent(cfg)
    if latent:  # the backbone is built for the autoencoder's latents
        make_latent_config(cfg)
    validate_train_config(cfg)
    resolve_auto_precision(cfg)
    if latent:
        run_autoencoder_stage(cfg)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    experiment_dir = Path(cfg.paths.output_root) / cfg.name
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), experiment_dir, auto=bool(cfg.get("resume")),
                                  run_config=config_to_dict(cfg))
    # mmap: the metadata and the shapes, without reading the tensors
    resume_from = load_checkpoint_file(ckpt_path, mmap=True) if ckpt_path else {}
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    module.codec = getattr(datamodule, "codec", None)
    if ckpt_path:
        check_checkpoint_fits(module, resume_from, ckpt_path, "this run's config")
    wandb_run_id = resume_from.get("wandb_run_id")
    del resume_from  # unmap the file
    preemption = Preemption(cfg.paths.checkpoint_dir)
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    # Order matters at the end of each step and of training: the random stream is stashed, the
    # final checkpoint written and a pending signal acted on before any sampling callback runs.
    callbacks = [TrainingRNG(), FinalCheckpoint(last), preemption, DestroyProcessGroupAtExit(),
                 *build_callbacks(cfg)]
    logger = build_logger(cfg, wandb_run_id=wandb_run_id)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        # the configured logger first (trainer.logger), then the run's own record of scalars
        logger=[*([logger] if logger else []), RunRecordLogger(run_dir)],
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )
    if logger:
        logger.log_hyperparams(config_to_dict(cfg))
    if latent:
        log_latent_scale(trainer, datamodule)

    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except Preempted as e:
        _finish_logger(logger, preempted=True)
        raise (preemption.error or e) from None
    except SIGTERMException as e:  # Lightning's own stop, outside a training step
        _finish_logger(logger, preempted=True)
        raise preemption.error or Preempted(
            "received SIGTERM outside a training step: no new checkpoint; resume from the "
            "newest one with resume=auto", None, trainer.global_step,
        ) from e
    train_seconds = time.perf_counter() - start
    if ckpt_path and trainer.is_global_zero and not last.exists():
        # resumed from a checkpoint already at max_steps (a job killed in its end-of-training
        # work): fit had nothing to do; this run's folder still gets its final checkpoint
        atomic_copy(ckpt_path, last)

    step = final_step(trainer)
    metrics = {
        "global_step": step,
        "train_seconds": round(train_seconds, 1),
        "num_parameters": module.num_parameters(),
        "checkpoint": str(last),
    }
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()
                    if v.numel() == 1 and k != STEP_KEY})
    # Under ddp (one process per device, still running here) every rank generates its share of
    # the evaluation samples; after ddp_spawn only the main process is left and draws them all.
    distributed = process_group_size()[1] > 1
    if cfg.eval.enabled and (trainer.is_global_zero or distributed):
        from diffusion_lab.tasks.evaluate import evaluate_module

        interruptible = contextlib.nullcontext() if distributed else preemption.after_final_checkpoint(step)
        try:
            with interruptible:
                evaluation = evaluate_module(module, datamodule, cfg, run_dir, distributed=distributed)
        except Preempted:
            _finish_logger(logger, preempted=True)
            raise
        metrics.update(evaluation)
        if evaluation and trainer.is_global_zero:
            for each in trainer.loggers:
                each.log_metrics({f"eval/{k}": v for k, v in evaluation.items()
                                  if isinstance(v, (int, float))}, step=step)
    if trainer.is_global_zero:
        atomic_write_json(metrics, run_dir / "metrics.json")
        _print_summary(run_dir, metrics)
    _finish_logger(logger)
    return metrics


def _finish_logger(logger, preempted: bool = False) -> None:
    if logger and type(logger).__name__ == "WandbLogger":
        if preempted:
            logger.experiment.mark_preempting()
        logger.experiment.finish(exit_code=75 if preempted else 0)


def _print_summary(run_dir: Path, metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"diffusion-lab run: {run_dir}", show_header=False)
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)
    log.info("metrics: %s", json.dumps(metrics))
