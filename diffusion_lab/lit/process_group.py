"""Destroy the ``torch.distributed`` process group before the interpreter exits.

Lightning registers ``destroy_process_group`` at exit for NCCL only. A gloo group (``trainer=
ddp_cpu``, CPU DDP) is left to the interpreter's own teardown, where its worker threads can be
destroyed while still joinable: the process then dies with ``terminate called without an active
exception`` after training has finished (seen once in a two-process ``ddp_spawn`` run under
load). Destroying the group first, at ``atexit`` (after Lightning's own end-of-run barriers
and the spawn launcher's hand-back of results), leaves nothing for that teardown to race.
"""

from __future__ import annotations

import atexit

import lightning as L
import torch.distributed as dist

_registered = False


def destroy_process_group() -> None:
    """``dist.destroy_process_group()`` if a default group is still alive in this process."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DestroyProcessGroupAtExit(L.Callback):
    """Registers :func:`destroy_process_group` at exit, once per process, in every rank that
    joined a non-NCCL group (the ranks that ``setup`` runs in)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        global _registered
        if _registered or not (dist.is_available() and dist.is_initialized()):
            return
        if dist.get_backend() == "nccl":
            return  # Lightning registers its own
        atexit.register(destroy_process_group)
        _registered = True
