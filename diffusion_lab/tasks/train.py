"""train(cfg): validate, build, fit, checkpoint, evaluate, summarise."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.tasks.build import (
    build_callbacks,
    build_datamodule,
    build_logger,
    build_module,
    config_to_dict,
)
from diffusion_lab.tasks.io import AtomicCheckpointIO, atomic_write_json
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.validate import validate_train_config

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Run one training job described by ``cfg``; returns the final metrics."""
    validate_train_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    callbacks = build_callbacks(cfg)
    logger = build_logger(cfg)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )
    if logger:
        logger.log_hyperparams(config_to_dict(cfg))

    experiment_dir = Path(cfg.paths.output_root) / cfg.name
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), experiment_dir, run_dir)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - start

    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    trainer.save_checkpoint(last)

    metrics = {
        "global_step": trainer.global_step,
        "train_seconds": round(train_seconds, 1),
        "num_parameters": module.num_parameters(),
        "checkpoint": str(last),
    }
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
    if trainer.is_global_zero and cfg.eval.enabled:
        from diffusion_lab.tasks.evaluate import evaluate_module

        evaluation = evaluate_module(module, datamodule, cfg, run_dir)
        metrics.update(evaluation)
        if logger and evaluation:
            logger.log_metrics({f"eval/{k}": v for k, v in evaluation.items()}, step=trainer.global_step)
    if trainer.is_global_zero:
        atomic_write_json(metrics, run_dir / "metrics.json")
        _print_summary(run_dir, metrics)
    if logger and hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
        logger.experiment.finish()
    return metrics


def _print_summary(run_dir: Path, metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"diffusion-lab run: {run_dir}", show_header=False)
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)
    log.info("metrics: %s", json.dumps(metrics))
