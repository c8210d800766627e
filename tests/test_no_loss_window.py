"""No window where a crash or a signal loses work.

A SIGTERM/SIGUSR1 is honoured wherever it lands (between steps in a sampling callback, during
validation, during the end-of-training dashboard, during the final evaluation): a checkpoint,
:class:`Preempted` (exit 75 through the CLI), and the run resumed from it ends with the weights
of the run never interrupted. The final checkpoint is on disk before the dashboard starts.
A full disk or a read-only folder fails a checkpoint write with one line and the previous
checkpoint intact (injected OSErrors).
"""

from __future__ import annotations

import errno
import logging
import os
import signal

import lightning as L
import pytest
import torch
from test_resume import QUIET, TINY_MLP, assert_same_training_state, every, final_state, one_thread  # noqa: F401

import diffusion_lab.tasks.train as train_task
from diffusion_lab.lit.signals import Preempted
from diffusion_lab.tasks.io import (
    CheckpointError,
    atomic_torch_save,
    atomic_write_json,
    load_checkpoint_file,
)
from diffusion_lab.tasks.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
OPTS = [*TINY_MLP, *QUIET, *every(2), "trainer.val_check_interval=3"]


class SignalDuring(L.Callback):
    """Sends ``signum`` to this process inside hook ``hook`` at step ``step``, then "works" in
    that hook; ``finished`` records whether the work after the signal ran to its end."""

    def __init__(self, hook: str, step: int, signum=signal.SIGTERM) -> None:
        self.hook, self.step, self.signum, self.finished, self.sent = hook, step, signum, False, False
        setattr(self, hook, self._fire)

    def _fire(self, trainer, *args) -> None:
        if self.sent or trainer.global_step != self.step:
            return
        self.sent = True
        os.kill(os.getpid(), self.signum)
        for _ in range(200):  # a long sampling job: the signal must stop it
            torch.randn(64, 64) @ torch.randn(64, 64)
        self.finished = True


def _with_callback(monkeypatch, callback):
    original = train_task.build_callbacks
    monkeypatch.setattr(train_task, "build_callbacks", lambda c: [*original(c), callback])


def _reference(make_cfg, tmp_path, steps):
    train(make_cfg(*OPTS, f"trainer.max_steps={steps}", run_dir=tmp_path / "reference"))
    return final_state(tmp_path / "reference")


@pytest.mark.parametrize(("hook", "signum"), [
    ("on_train_batch_end", signal.SIGUSR1),       # a sample grid / x_t strip between steps
    ("on_validation_batch_end", signal.SIGTERM),  # validation
    ("on_validation_batch_end", signal.SIGUSR1),
])
def test_signal_between_steps_checkpoints_and_resumes_exactly(make_cfg, tmp_path, monkeypatch, hook, signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    cb = SignalDuring(hook, step=3, signum=signum)
    _with_callback(monkeypatch, cb)
    cfg = make_cfg(*OPTS, "trainer.max_steps=8", run_dir=tmp_path / "victim")
    name = signal.Signals(signum).name
    with pytest.raises(Preempted, match=f"received {name}: saved .*last.ckpt at step 3;"):
        train(cfg)
    assert cb.sent and not cb.finished  # the work was cut short, not waited for
    assert {s: signal.getsignal(s) for s in before} == before  # handlers given back
    ckpt = tmp_path / "victim" / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(ckpt)["global_step"] == 3
    monkeypatch.undo()
    train(make_cfg(*OPTS, "trainer.max_steps=8", f"ckpt_path={ckpt}", run_dir=tmp_path / "resumed"))
    assert_same_training_state(_reference(make_cfg, tmp_path, 8), final_state(tmp_path / "resumed"))


class SeesFinalCheckpoint(L.Callback):
    """An end-of-training dashboard callback: what is on disk when it starts."""

    def on_train_end(self, trainer, pl_module):
        path = trainer.default_root_dir + "/checkpoints/last.ckpt"
        self.step_on_disk = load_checkpoint_file(path)["global_step"]


def test_final_checkpoint_is_written_before_the_dashboard(make_cfg, tmp_path, monkeypatch):
    cb = SeesFinalCheckpoint()
    _with_callback(monkeypatch, cb)
    train(make_cfg(*OPTS, "trainer.max_steps=4", run_dir=tmp_path / "r"))
    assert cb.step_on_disk == 4


def test_signal_during_the_dashboard_stops_it_after_the_final_checkpoint(make_cfg, tmp_path, monkeypatch):
    cb = SignalDuring("on_train_end", step=4)
    _with_callback(monkeypatch, cb)
    with pytest.raises(Preempted, match=r"received SIGTERM during the end-of-training work: .*last.ckpt "
                                        r"\(step 4\) was already written"):
        train(make_cfg(*OPTS, "trainer.max_steps=4", run_dir=tmp_path / "r"))
    assert cb.sent and not cb.finished
    assert load_checkpoint_file(tmp_path / "r" / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert not (tmp_path / "r" / "metrics.json").exists()
    # the requeued job (resume=auto) finds the final checkpoint and finishes the run
    monkeypatch.undo()
    cfg = make_cfg(*OPTS, "trainer.max_steps=4", "resume=auto", run_dir=tmp_path / "r2")
    cfg.paths.output_root = str(tmp_path)
    cfg.name = ""
    assert train(cfg)["global_step"] == 4
    assert (tmp_path / "r2" / "metrics.json").exists()


def test_signal_during_the_final_evaluation_is_honoured(make_cfg, tmp_path, monkeypatch):
    from diffusion_lab.tasks import evaluate

    def slow_evaluation(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(200):
            torch.randn(64, 64) @ torch.randn(64, 64)
        raise AssertionError("the evaluation was not interrupted")

    monkeypatch.setattr(evaluate, "evaluate_module", slow_evaluation)
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted, match="received SIGUSR1 during the end-of-training work"):
        train(make_cfg(*OPTS, "trainer.max_steps=2", "eval.enabled=true", run_dir=tmp_path / "r"))
    assert signal.getsignal(signal.SIGUSR1) == before


# -- a full disk, a read-only folder -------------------------------------------------------------
@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "No space left on device"),
                                             (errno.EROFS, "Read-only file system")])
def test_failed_write_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch, code, words):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"global_step": 1, "state_dict": {}}, path)
    real_fsync = os.fsync

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError) as info:
        atomic_torch_save({"global_step": 2, "state_dict": {}}, path)
    assert str(info.value) == f"cannot write {path}: {words} (the previous file is kept)"
    with pytest.raises(CheckpointError, match=words):
        atomic_write_json({"a": 1}, tmp_path / "metrics.json")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load_checkpoint_file(path)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_atomic_write_json_fsyncs_and_renames(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    atomic_write_json({"a": 1}, tmp_path / "m.json")
    assert len(synced) == 2  # the file, then its folder
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def _disk_fills_at(monkeypatch, step_files: set[str]):
    """Writes of the named checkpoints fail with ENOSPC from now on."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if any(name in getattr(f, "name", "") for name in step_files):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_under_preemption_still_exits_for_requeue(make_cfg, tmp_path, monkeypatch):
    _disk_fills_at(monkeypatch, {"last.ckpt"})
    _with_callback(monkeypatch, SignalDuring("on_train_batch_end", step=3, signum=signal.SIGUSR1))
    with pytest.raises(Preempted, match=r"received SIGUSR1: could not save a checkpoint \(cannot write "
                                        r".*last.ckpt: No space left on device"):
        train(make_cfg(*OPTS, "trainer.max_steps=8", run_dir=tmp_path / "r"))
    assert load_checkpoint_file(tmp_path / "r" / "checkpoints" / "step0000002.ckpt")["global_step"] == 2
    assert not list((tmp_path / "r" / "checkpoints").glob(".*tmp*"))


def test_full_disk_at_a_periodic_checkpoint_is_one_line(make_cfg, tmp_path, monkeypatch):
    _disk_fills_at(monkeypatch, {"step0000004"})
    with pytest.raises(CheckpointError, match=r"cannot write .*step0000004.ckpt: No space left on device "
                                              r"\(the previous file is kept\)$"):
        train(make_cfg(*OPTS, "trainer.max_steps=8", run_dir=tmp_path / "r"))
    assert load_checkpoint_file(tmp_path / "r" / "checkpoints" / "step0000002.ckpt")["global_step"] == 2


# -- SLURM auto-requeue: Lightning owns SIGUSR1 and writes hpc_ckpt_<n>.ckpt -----------------------
SLURM = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_JOB_NAME": "train",
         "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}


@pytest.mark.slow
def test_slurm_auto_requeue_checkpoint_is_resumed_and_sigterm_exits_75(make_cfg, tmp_path, caplog):
    import subprocess
    import sys

    from test_resume import ROOT, _wait_for

    bin_dir = tmp_path / "bin"  # a stand-in for SLURM's scontrol: records the requeue request
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/requeued\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {**os.environ, **SLURM, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    opts = [*OPTS, "trainer.max_steps=100000", "name=job", f"paths.output_root={tmp_path}", "resume=auto"]
    with open(tmp_path / "job.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *opts], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait_for("job/*/checkpoints/step0000004.ckpt", tmp_path, proc)
    proc.send_signal(signal.SIGUSR1)  # Lightning's requeue handler: hpc_ckpt_1.ckpt + scontrol
    _wait_for("requeued", tmp_path, proc)
    proc.send_signal(signal.SIGTERM)  # SLURM then stops the job
    assert proc.wait(120) == 75, (tmp_path / "job.log").read_text()[-3000:]
    assert (tmp_path / "requeued").read_text().strip() == "requeue 4242"
    (run_dir,) = (tmp_path / "job").iterdir()
    hpc = run_dir / "hpc_ckpt_1.ckpt"
    hpc_step = load_checkpoint_file(hpc)["global_step"]
    assert any(line.startswith("preempted: received SIGTERM: saved")
               for line in (tmp_path / "job.log").read_text().splitlines())

    # Keep only what Lightning's handler wrote: the requeued job must find it and go on from it.
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        path.unlink()
    requeued = make_cfg(*OPTS, f"trainer.max_steps={hpc_step + 2}", "name=job", "resume=auto",
                        run_dir=tmp_path / "job" / "requeued")
    requeued.paths.output_root = str(tmp_path)
    with caplog.at_level(logging.INFO, logger="diffusion_lab.tasks.resume"):
        assert train(requeued)["global_step"] == hpc_step + 2
    assert f"resuming from {hpc}" in caplog.text
