"""The end-of-training checkpoint, written inside ``fit`` where the full training state lives.

Saving after ``trainer.fit`` returns is wrong under ``ddp_spawn``: the main process gets the
weights back but not the optimizer, the loops or the step, so a ``last.ckpt`` it wrote would
resume from step 0. ``FinalCheckpoint`` saves in ``on_train_end`` instead (every rank calls
``trainer.save_checkpoint``, as Lightning requires; rank 0 writes) and leaves the final step in
``trainer.callback_metrics``, which Lightning carries back to the main process.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

STEP_KEY = "trainer/global_step"


class FinalCheckpoint(L.Callback):
    """Write ``path`` when training ends normally (not on an exception or a pre-emption)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: resumable
        trainer.callback_metrics[STEP_KEY] = torch.tensor(trainer.global_step)


def final_step(trainer: L.Trainer) -> int:
    """The step training ended at, also in the main process of a ``ddp_spawn`` run."""
    step = trainer.callback_metrics.get(STEP_KEY)
    return int(step) if step is not None else trainer.global_step
