"""The one place that knows how each experiment logger takes images, tables and curves.

Callbacks call these helpers with a Lightning trainer; whatever logger is attached
(W&B, TensorBoard, CSV, none) gets what it can show, and the PNG is always written
into the run directory as well.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def run_dir(trainer) -> Path:
    """The run's output directory (trainer.default_root_dir, set to the Hydra run dir)."""
    return Path(trainer.default_root_dir)


def _loggers(trainer):
    return list(getattr(trainer, "loggers", []) or [])


def log_image(trainer, key: str, image: np.ndarray, step: int, caption: str = "") -> Path:
    """Write ``image`` (uint8 H x W x C) to <run_dir>/media/<key>/step<step>.png and log it."""
    from diffusion_lab.utils.images import save_png

    path = save_png(image, run_dir(trainer) / "media" / key.replace("/", "_") / f"step{step:07d}.png")
    if trainer.global_rank != 0:
        return path
    for logger in _loggers(trainer):
        name = type(logger).__name__
        if name == "WandbLogger":
            import wandb

            logger.experiment.log({key: wandb.Image(str(path), caption=caption)}, step=step)
        elif name == "TensorBoardLogger":
            logger.experiment.add_image(key, image, step, dataformats="HWC")
    return path


def log_table(trainer, key: str, columns: list[str], rows: list[list], step: int) -> Path:
    """A small table: W&B Table, TensorBoard text, and <run_dir>/media/<key>.json always."""
    path = run_dir(trainer) / "media" / f"{key.replace('/', '_')}_step{step:07d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"columns": columns, "rows": rows}, indent=1))
    os.replace(tmp, path)
    if trainer.global_rank != 0:
        return path
    for logger in _loggers(trainer):
        name = type(logger).__name__
        if name == "WandbLogger":
            import wandb

            logger.experiment.log({key: wandb.Table(columns=columns, data=rows)}, step=step)
        elif name == "TensorBoardLogger":
            text = " | ".join(columns) + "\n" + "\n".join(" | ".join(map(str, r)) for r in rows)
            logger.experiment.add_text(key, text, step)
    return path
