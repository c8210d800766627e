"""Nothing lost: atomic checkpoint writes, corrupt-file fallback, non-finite steps, signals."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from test_resume import QUIET, TINY_MLP, TINY_UNET, _start, _wait_for, every, one_thread  # noqa: F401

import diffusion_lab.tasks.train as train_task
from diffusion_lab.lit.nonfinite import NonFiniteError
from diffusion_lab.lit.signals import Preempted
from diffusion_lab.tasks.io import (
    AtomicCheckpointIO,
    CheckpointError,
    atomic_torch_save,
    load_checkpoint_file,
)
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.train import train


# -- atomic writes and unreadable files ----------------------------------------------------------
def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.ones(1000)}, path)
    real_save = torch.save

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the temporary file
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint_file(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_next_write_removes_temporaries_of_killed_writers_only(tmp_path):
    """A SIGKILL mid-write leaves .<name>.tmp-<pid>; the next write removes it once that
    process is gone and the file is old, and leaves a live writer's file alone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hour_ago = time.time() - 2 * 3600
    stale = tmp_path / f".last.ckpt.tmp-{dead.pid}"
    live = tmp_path / f".step0000004.ckpt.tmp-{os.getppid()}"  # a live process: kept
    fresh = tmp_path / f".step0000008.ckpt.tmp-{dead.pid}"  # recent: perhaps another host's
    for f in (stale, live, fresh):
        f.write_bytes(b"PK half a checkpoint")
    for f in (stale, live):
        os.utime(f, (hour_ago, hour_ago))
    atomic_torch_save({"step": 3}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["last.ckpt", live.name, fresh.name])


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_or_corrupt_checkpoint_error_names_the_file(tmp_path):
    path = tmp_path / "step0000004.ckpt"
    atomic_torch_save({"state_dict": {"w": torch.ones(100)}}, path)
    _truncate(path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is unreadable"):
        load_checkpoint_file(path)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is unreadable"):
        load_checkpoint_file(path)


def test_auto_resume_falls_back_to_the_previous_good_checkpoint(tmp_path, caplog):
    experiment = tmp_path / "exp"
    good = experiment / "run1" / "checkpoints" / "step0000004.ckpt"
    bad = experiment / "run2" / "checkpoints" / "last.ckpt"
    atomic_torch_save({"global_step": 4, "state_dict": {}}, good)
    atomic_torch_save({"global_step": 8, "state_dict": {}}, bad)
    os.utime(good, (time.time() - 60, time.time() - 60))
    _truncate(bad)
    with caplog.at_level(logging.WARNING):
        found = resolve_ckpt_path(None, experiment, auto=True)
    assert found == str(good)
    assert f"skipping unreadable checkpoint: checkpoint {bad} is unreadable" in caplog.text
    assert resolve_ckpt_path("last", experiment) == str(good)
    assert resolve_ckpt_path(None, tmp_path / "never_ran", auto=True) is None  # fresh start
    with pytest.raises(CheckpointError, match=f"no readable checkpoint in {bad.parent}"):
        resolve_ckpt_path(str(bad.parent.parent), experiment)


def test_nan_weights_are_never_written(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"backbone.w": torch.ones(3)}, "global_step": 1}, path)
    nan = torch.tensor([1.0, float("nan"), float("inf")])
    with pytest.raises(NonFiniteError, match=f"refusing to write checkpoint {path}: backbone.w has 2 NaN/inf"):
        io.save_checkpoint({"state_dict": {"backbone.w": nan}, "global_step": 2}, path)
    assert io.load_checkpoint(path)["global_step"] == 1


# -- non-finite loss -----------------------------------------------------------------------------
class PoisonBatches(L.Callback):
    """Turns the batches of the given steps into NaN and records the weights around them."""

    def __init__(self, steps):
        self.steps, self.unchanged = set(steps), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before = None
        if trainer.global_step in self.steps:
            batch[0].fill_(float("nan"))
            self.before = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.before is not None:
            after = pl_module.state_dict()
            self.unchanged.append(all(torch.equal(v, after[k]) for k, v in self.before.items()))


def _with_callback(monkeypatch, callback):
    original = train_task.build_callbacks
    monkeypatch.setattr(train_task, "build_callbacks", lambda c: [*original(c), callback])


@pytest.mark.usefixtures("one_thread")
def test_nonfinite_steps_are_skipped_and_counted(make_cfg, tmp_path, monkeypatch):
    poison = PoisonBatches(steps=[2, 3, 6])
    _with_callback(monkeypatch, poison)
    metrics = train(make_cfg(*TINY_MLP, *QUIET, *every(4), "trainer.max_steps=8", run_dir=tmp_path / "r"))
    assert poison.unchanged == [True, True, True]  # weights and EMA untouched by a NaN batch
    assert metrics["train/skipped_nonfinite"] == 3
    last = load_checkpoint_file(tmp_path / "r" / "checkpoints" / "last.ckpt")
    assert last["nonfinite"] == {"skipped": 3, "consecutive": 0}
    assert int(last["state_dict"]["ema.num_updates"]) == 8 - 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


@pytest.mark.usefixtures("one_thread")
def test_too_many_consecutive_nonfinite_steps_stop_training(make_cfg, tmp_path, monkeypatch):
    _with_callback(monkeypatch, PoisonBatches(steps=range(3, 100)))
    cfg = make_cfg(*TINY_MLP, *QUIET, *every(2), "trainer.max_steps=50",
                   "module.max_consecutive_nonfinite=4", run_dir=tmp_path / "r")
    with pytest.raises(NonFiniteError, match="training stopped at step 6: 4 consecutive steps had a non-finite"):
        train(cfg)
    # The newest checkpoint holds the last good weights (steps 3.. never changed them).
    newest = load_checkpoint_file(tmp_path / "r" / "checkpoints" / "step0000006.ckpt")
    good = load_checkpoint_file(tmp_path / "r" / "checkpoints" / "step0000004.ckpt")
    assert all(torch.equal(newest["state_dict"][k], v) for k, v in good["state_dict"].items())


# -- signals -------------------------------------------------------------------------------------
class SignalAt(L.Callback):
    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.usefixtures("one_thread")
def test_sigusr1_checkpoints_at_the_end_of_the_step_and_stops(make_cfg, tmp_path, monkeypatch):
    _with_callback(monkeypatch, SignalAt(3, signal.SIGUSR1))
    before = signal.getsignal(signal.SIGUSR1)
    cfg = make_cfg(*TINY_MLP, *QUIET, "callbacks=none", "trainer.max_steps=50", run_dir=tmp_path / "r")
    with pytest.raises(Preempted, match="received SIGUSR1: saved .*last.ckpt at step 4"):
        train(cfg)
    assert load_checkpoint_file(tmp_path / "r" / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert signal.getsignal(signal.SIGUSR1) == before  # handler given back


def test_an_existing_sigusr1_handler_is_left_alone(tmp_path):
    """E.g. Lightning's SLURM auto-requeue handler: Preemption does not replace it."""
    from diffusion_lab.lit.signals import Preemption

    def theirs(signum, frame):
        pass

    previous = signal.signal(signal.SIGUSR1, theirs)
    try:
        Preemption(tmp_path).on_train_start(None, None)
        assert signal.getsignal(signal.SIGUSR1) is theirs
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("one_thread")
def test_sigterm_saves_a_checkpoint_exits_75_and_resumes(make_cfg, tmp_path):
    opts = [*TINY_UNET, *QUIET, *every(3)]
    proc = _start(tmp_path, "job", *opts, "trainer.max_steps=100000")
    _wait_for("job/*/checkpoints/step0000003.ckpt", tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 75
    log = (tmp_path / "job.log").read_text()
    (line,) = [x for x in log.splitlines() if x.startswith("preempted: ")]
    assert "preempted: received SIGTERM: saved" in line and "Traceback" not in log
    (run_dir,) = (tmp_path / "job").iterdir()
    step = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert f"last.ckpt at step {step};" in line and step >= 3

    # The requeued job: same command line with resume=auto, continues from that step.
    cfg = make_cfg(*opts, f"trainer.max_steps={step + 2}", "name=job", "resume=auto",
                   run_dir=tmp_path / "job" / "requeued")
    cfg.paths.output_root = str(tmp_path)
    assert train(cfg)["global_step"] == step + 2
