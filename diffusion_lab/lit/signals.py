"""Pre-emption: on SIGTERM or SIGUSR1, checkpoint and stop with exit status 75.

SLURM sends SIGTERM before it pre-empts or cancels a job (``--signal=USR1@90`` asks for
SIGUSR1 ahead of the time limit). ``Preemption`` honours the signal wherever training is:

- during a training step: the step finishes, ``last.ckpt`` is written (atomically, every rank
  agreeing under DDP) and :class:`Preempted` is raised;
- between steps (sampling callbacks, validation), single process: the signal interrupts that
  work at once and ``last.ckpt`` is written from ``on_exception`` (the training state is that
  of the finished step);
- during the end-of-training work (dashboard callbacks, evaluation): the final checkpoint is
  already on disk (``FinalCheckpoint`` runs first), so the work stops at once and nothing is lost.

``scripts/train.py`` turns :class:`Preempted` into the line ``preempted: ...`` on stderr and
exit code 75 (EX_TEMPFAIL), so a job script can requeue on that code and resume with
``resume=auto``. When the checkpoint cannot be written (disk full, read-only folder) the exit
code is still 75 and the line names the reason: the newest earlier checkpoint is intact.

Lightning's own handling is left in place: Lightning already catches SIGTERM in every run
(``trainer.received_sigterm``), and the handler installed here calls Lightning's before doing
anything else. SIGUSR1 gets a handler only when nothing else handles it (under
``SLURMEnvironment(auto_requeue=True)`` Lightning's requeue handler owns it and writes
``hpc_ckpt_<n>.ckpt``, which ``resume=auto`` finds). Under DDP only the end of a training step
acts (the ranks may be elsewhere between steps). Previous handlers are restored at the end.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class Preempted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; the job may be requeued."""

    def __init__(self, message: str, checkpoint: Path | None, step: int) -> None:
        super().__init__(message)
        self.checkpoint, self.step = checkpoint, step


class _Interrupted(Preempted):
    """Raised by the signal handler in the middle of work between steps (no checkpoint yet)."""


class Preemption(L.Callback):
    """Checkpoint and stop on SIGTERM/SIGUSR1; ``error`` holds the :class:`Preempted` raised."""

    def __init__(self, checkpoint_dir: str | Path, filename: str = "last.ckpt") -> None:
        self.path = Path(checkpoint_dir) / filename
        self.error: Preempted | None = None
        self._received: str | None = None
        self._interruptible = False  # between steps, single process: a signal raises at once
        self._final_written = False
        self._previous: dict[int, object] = {}
        self._step = 0

    # -- handlers --------------------------------------------------------------------------
    def _handler(self, signum, frame) -> None:
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)  # Lightning's SIGTERM bookkeeping (and DDP child shutdown)
        self._received = signal.Signals(signum).name
        if self._interruptible:
            self._interruptible = False
            raise _Interrupted(f"received {self._received}", None, self._step)

    def install(self) -> None:
        """Chain a handler to SIGTERM and take a free SIGUSR1 (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        usr1 = getattr(signal, "SIGUSR1", None)
        for sig in (signal.SIGTERM, usr1):
            if sig is None or sig in self._previous:
                continue
            current = signal.getsignal(sig)
            if sig == usr1 and current not in (signal.SIG_DFL, None):
                continue  # e.g. Lightning's SLURM requeue handler
            self._previous[sig] = current
            signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self._interruptible = False

    @contextlib.contextmanager
    def after_final_checkpoint(self, step: int):
        """Work after the final checkpoint (evaluation): a signal stops it, exit 75 follows."""
        self._final_written, self._step = True, step
        self.install()
        self._interruptible = True
        try:
            yield
        except _Interrupted as e:
            raise self._stopped_after_final(step) from e
        finally:
            self.restore()

    # -- Lightning hooks -------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning has registered its own handlers by now (it does so right before training).
        self.install()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._interruptible = False  # a training step is never cut in half

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        received = trainer.received_sigterm or self._received is not None
        if trainer.world_size > 1:  # every rank must save, and all at the same step
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if received:
            raise self._save(trainer)
        self._step = trainer.global_step
        self._interruptible = trainer.world_size == 1

    def on_train_end(self, trainer, pl_module) -> None:
        # FinalCheckpoint (earlier in the callback list) has written last.ckpt: from here on a
        # signal only stops the end-of-training work.
        self._final_written, self._step = True, trainer.global_step
        if trainer.received_sigterm or self._received is not None:
            raise self._stopped_after_final(trainer.global_step)
        self._interruptible = trainer.world_size == 1

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._interruptible = False
        self.restore()
        if self.error is not None or trainer.world_size > 1:
            return
        if self._final_written and isinstance(exception, _Interrupted):
            self.error = self._stopped_after_final(trainer.global_step)
        elif isinstance(exception, (SIGTERMException, _Interrupted)):
            # Lightning stops by itself on a SIGTERM seen outside a training step (e.g. during
            # validation), and the handler above interrupts work between steps: one process
            # checkpoints the state of the last finished step here.
            self._save(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.restore()

    # -- the outcome -----------------------------------------------------------------------
    def _signal_name(self, trainer) -> str:
        if self._received:
            return self._received
        return "SIGTERM" if trainer is not None and trainer.received_sigterm else "a signal"

    def _stopped_after_final(self, step: int) -> Preempted:
        self.error = Preempted(
            f"received {self._received or 'SIGTERM'} during the end-of-training work: {self.path} "
            f"(step {step}) was already written; resume=auto finishes the run",
            self.path, step,
        )
        log.warning("%s", self.error)
        return self.error

    def _save(self, trainer) -> Preempted:
        step = trainer.global_step
        try:
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state: resumable
            message = f"saved {self.path} at step {step}; resume with ckpt_path={self.path} or resume=auto"
            saved = self.path
        except Exception as e:
            if not isinstance(e, OSError) and not isinstance(e.__cause__, OSError):
                raise
            # disk full, read-only folder (tasks/io.py's CheckpointError): the previous one is intact
            message = (f"could not save a checkpoint ({str(e).splitlines()[0]}); resume=auto "
                       "continues from the newest earlier one")
            saved = None
        self.error = Preempted(f"received {self._signal_name(trainer)}: {message}", saved, step)
        log.warning("%s", self.error)
        return self.error
