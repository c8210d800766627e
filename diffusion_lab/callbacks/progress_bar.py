"""The training progress bar: Lightning's rich bar in a terminal, plain lines in a log.

A live bar written to a file (a SLURM log, ``nohup``, a pipe) shows nothing until training
ends; ``progress_bar()`` (the callbacks group's ``progress_bar`` entry) picks ``RichProgressBar``
when stderr is a terminal and ``LogLinesProgressBar`` otherwise.
"""

from __future__ import annotations

import math

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from diffusion_lab.utils.progress import LineProgress, stderr_is_terminal


def progress_bar(**rich_kwargs) -> ProgressBar:
    """``RichProgressBar(**rich_kwargs)`` on a terminal, else ``LogLinesProgressBar()``."""
    return RichProgressBar(**rich_kwargs) if stderr_is_terminal() else LogLinesProgressBar()


def _metric_text(metrics: dict) -> str:
    parts = []
    for name, value in metrics.items():
        if name == "v_num":
            continue
        value = float(value) if hasattr(value, "__float__") else value
        parts.append(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}")
    return ", ".join(parts)


class LogLinesProgressBar(ProgressBar):
    """Training progress as plain stderr lines: the optimizer step against the run's total
    (``max_steps``, or the steps ``max_epochs`` implies), elapsed and remaining time and the
    progress-bar metrics (``train/loss``), at every tenth of the run and at least once a minute
    (``diffusion_lab.utils.progress.LineProgress``). A resumed run counts from its step."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._lines: LineProgress | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._enabled:
            return
        total = trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else None
        self._lines = LineProgress("training step", total, done=trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._enabled and self._lines is not None:
            self._lines.update(trainer.global_step, _metric_text(self.get_metrics(trainer, pl_module)))

    def on_train_end(self, trainer, pl_module) -> None:
        if self._lines is not None:
            self._lines.close()
            self._lines = None
