"""Pre-emption: on SIGTERM or SIGUSR1, checkpoint at the end of the step and stop.

SLURM sends SIGTERM before it pre-empts or cancels a job (``--signal=USR1@90`` asks for
SIGUSR1 ahead of the time limit). Either way ``Preemption`` lets the current step finish,
writes ``last.ckpt`` (atomically, like every checkpoint) on every rank's agreement, and raises
:class:`Preempted`; ``scripts/train.py`` turns that into the line ``preempted: ...`` on stderr
and exit code 75 (EX_TEMPFAIL), so a job script can requeue on that code and resume with
``resume=auto``.

Lightning's own handling is left in place: Lightning already catches SIGTERM in every run
(``trainer.received_sigterm``), which this callback reads instead of installing a handler of
its own, and acting at the end of the step comes before Lightning's own exit right after it
(``SIGTERMException``, a ``SystemExit`` with status 0 and no checkpoint). When Lightning
exits elsewhere (a SIGTERM during validation), a single process still checkpoints in
``on_exception``; under DDP it does not (the ranks may be at different points), and the last
periodic checkpoint is the one to resume from.
SIGUSR1 gets a handler only when nothing else handles it (under ``SLURMEnvironment(
auto_requeue=True)`` Lightning's requeue handler owns it), and the previous handler is
restored when training ends.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class Preempted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; the job may be requeued."""

    def __init__(self, message: str, checkpoint: Path, step: int) -> None:
        super().__init__(message)
        self.checkpoint, self.step = checkpoint, step


class Preemption(L.Callback):
    """Checkpoint and stop on SIGTERM/SIGUSR1; ``error`` holds the :class:`Preempted` raised."""

    def __init__(self, checkpoint_dir: str | Path, filename: str = "last.ckpt") -> None:
        self.path = Path(checkpoint_dir) / filename
        self.error: Preempted | None = None
        self._usr1 = False
        self._previous_usr1 = None

    def _on_usr1(self, signum, frame) -> None:
        self._usr1 = True

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning has registered its own handlers by now (it does so right before training).
        usr1 = getattr(signal, "SIGUSR1", None)
        in_main = threading.current_thread() is threading.main_thread()
        if usr1 is not None and in_main and signal.getsignal(usr1) in (signal.SIG_DFL, None):
            self._previous_usr1 = signal.signal(usr1, self._on_usr1)

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None

    def _signal_name(self, trainer) -> str:
        return "SIGTERM" if trainer.received_sigterm else "SIGUSR1" if self._usr1 else "a signal"

    def _save(self, trainer) -> Preempted:
        trainer.save_checkpoint(self.path)
        step = trainer.global_step
        self.error = Preempted(
            f"received {self._signal_name(trainer)}: saved {self.path} at step {step}; "
            f"resume with ckpt_path={self.path} or resume=auto",
            self.path, step,
        )
        log.warning("%s", self.error)
        return self.error

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        received = trainer.received_sigterm or self._usr1
        if trainer.world_size > 1:  # every rank must save, and all at the same step
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if received:
            raise self._save(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore_handler()
        # Lightning stops by itself on a SIGTERM seen outside a training step (e.g. during
        # validation). One process can still checkpoint here; under DDP the ranks may not all
        # be here, so the last periodic checkpoint remains the place to resume from.
        if isinstance(exception, SIGTERMException) and self.error is None and trainer.world_size == 1:
            self._save(trainer)
