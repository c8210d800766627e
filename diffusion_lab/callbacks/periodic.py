"""The schedule shared by the periodic callbacks (sample grid, guidance sweep, mode coverage,
few-step grid, autoencoder reconstructions, ...): every N steps and at the end of training."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger(__name__)


class PeriodicMetric(L.Callback):
    """Calls ``make(trainer, module)`` every ``every_n_steps`` steps (null: never during training)
    and, with ``at_train_end``, when training ends; runs before step ``min_step`` (debug runs,
    smoke tests) measure an untrained model and are skipped. ``last`` holds the latest result."""

    def __init__(self, every_n_steps: int | None, at_train_end: bool, min_step: int) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 or null, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.at_train_end = at_train_end
        self.min_step = min_step
        self.last: dict | None = None

    def make(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        raise NotImplementedError

    def too_early(self, trainer: L.Trainer) -> bool:
        """True (and a log line on rank 0) before ``min_step``; the same on every rank."""
        if trainer.global_step >= self.min_step:
            return False
        if trainer.is_global_zero:
            log.info("%s skipped at step %d: runs before step min_step=%d measure an untrained "
                     "model", type(self).__name__, trainer.global_step, self.min_step)
        return True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step, every = trainer.global_step, self.every_n_steps
        # the last step is left to on_train_end, so it is not measured twice
        if (every and step > 0 and step % every == 0 and step < (trainer.max_steps or -1)
                and (self.last is None or self.last["step"] != step)):
            self.make(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self.at_train_end:
            self.make(trainer, pl_module)
