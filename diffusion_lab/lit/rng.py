"""The training random stream, saved in checkpoints and restored on resume, per rank.

Every random draw of a training step (timesteps, noise, label dropout, dropout masks) comes
from the global generators of torch, numpy and Python. For a resumed run to draw exactly what
the uninterrupted run would have drawn, two things must hold:

1. the checkpoint holds the state of those generators as they were at the end of the step
   it was written after (per rank: every process has its own stream);
2. nothing between two training steps shifts the stream, or the uninterrupted run would have
   drawn from a different position than the resumed one. Validation, sample grids and a new
   epoch's data iterator may all draw random numbers between steps.

``TrainingRNG`` ensures both: at the end of every training step it stashes the generator
states, and at the start of the next step it puts them back, so whatever ran in between
leaves the training stream untouched. The stash is what checkpoints store; on resume it is
put back before the first step. Cost: copying a few kilobytes of state per step.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)


def get_rng_state() -> dict[str, Any]:
    """The global generator states of this process (CUDA: the current device, if in use)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _all_gather(obj: Any, world_size: int) -> list[Any]:
    if world_size == 1 or not torch.distributed.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(out, obj)
    return out


class TrainingRNG(L.Callback):
    """Keep the training random stream apart from everything else; checkpoint it per rank."""

    def __init__(self) -> None:
        self._stash: dict[str, Any] | None = None
        self._rank, self._world_size = 0, 1

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Runs before a checkpoint is restored into this callback.
        self._rank, self._world_size = trainer.global_rank, trainer.world_size

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._stash is not None:
            set_rng_state(self._stash)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._stash = get_rng_state()

    def state_dict(self) -> dict[str, Any]:
        # Called on every rank while a checkpoint is assembled (rank 0 writes it).
        return {"per_rank": _all_gather(self._stash, self._world_size)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        per_rank = state.get("per_rank") or []
        if len(per_rank) == self._world_size and per_rank[self._rank] is not None:
            self._stash = per_rank[self._rank]
        elif per_rank:
            log.warning(
                "checkpoint holds random states for %d process(es), this run has %d: "
                "the random stream restarts from the seed (the run is not bitwise reproducible)",
                len(per_rank), self._world_size,
            )
