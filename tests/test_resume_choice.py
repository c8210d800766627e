"""Which checkpoint ``resume=auto`` / ``ckpt_path=last`` / ``ckpt_path=<file>`` resumes.

The newest readable checkpoint of *this* training: Lightning's SLURM ``hpc_ckpt_*.ckpt``
included, another run's (same ``name``, other settings) never, and an explicitly named one only
when it shares the schedule and the objective.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import torch
from test_resume import QUIET, TINY_MLP, every, one_thread  # noqa: F401

from diffusion_lab.tasks.build import config_to_dict
from diffusion_lab.tasks.io import CheckpointError, atomic_torch_save
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.train import train


def fake_checkpoint(path: Path, run_config: dict, age_s: float = 0.0) -> Path:
    """A checkpoint as far as resume's choice is concerned: weights and the stored config."""
    atomic_torch_save({"state_dict": {"w": torch.zeros(1)}, "diffusion_lab_config": run_config}, path)
    if age_s:
        os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_auto_finds_lightnings_slurm_requeue_checkpoint(make_cfg, tmp_path):
    mine = config_to_dict(make_cfg())
    exp = tmp_path / "exp"
    fake_checkpoint(exp / "run1" / "checkpoints" / "step0000004.ckpt", mine, age_s=60)
    hpc = fake_checkpoint(exp / "run1" / "hpc_ckpt_1.ckpt", mine)
    assert resolve_ckpt_path(None, exp, auto=True, run_config=mine) == str(hpc)
    assert resolve_ckpt_path(str(exp / "run1"), exp, run_config=mine) == str(hpc)


@pytest.mark.parametrize("other", ["schedule=linear", "objective=v", "module.optimizer.lr=0.01", "seed=1",
                                   "backbone.base_channels=16"])
def test_auto_and_last_never_take_another_runs_checkpoint(make_cfg, tmp_path, caplog, other):
    mine, theirs = config_to_dict(make_cfg()), config_to_dict(make_cfg(other))
    exp = tmp_path / "exp"
    own = fake_checkpoint(exp / "run1" / "checkpoints" / "last.ckpt", mine, age_s=60)
    newer = fake_checkpoint(exp / "run2" / "checkpoints" / "last.ckpt", theirs)
    key = other.split("=")[0]
    with caplog.at_level(logging.WARNING):
        assert resolve_ckpt_path(None, exp, auto=True, run_config=mine) == str(own)
    assert f"skipping {newer}: another run's checkpoint ({key}" in caplog.text
    assert resolve_ckpt_path("last", exp, run_config=mine) == str(own)
    own.unlink()
    assert resolve_ckpt_path(None, exp, auto=True, run_config=mine) is None  # fresh start


@pytest.mark.parametrize("other", ["schedule=linear", "objective=x0"])
def test_an_explicit_checkpoint_of_another_process_is_refused(make_cfg, tmp_path, other):
    mine, theirs = config_to_dict(make_cfg()), config_to_dict(make_cfg(other))
    path = fake_checkpoint(tmp_path / "model.ckpt", theirs)
    with pytest.raises(CheckpointError, match=f"{path} was trained under another process \\("
                                              f"{other.split('=')[0]}"):
        resolve_ckpt_path(str(path), tmp_path, run_config=mine)
    # another learning rate is a choice, not another process: allowed when named explicitly
    lr = fake_checkpoint(tmp_path / "lr.ckpt", config_to_dict(make_cfg("module.optimizer.lr=0.01")))
    assert resolve_ckpt_path(str(lr), tmp_path, run_config=mine) == str(lr)


def test_a_checkpoint_without_weights_is_refused_in_one_line(tmp_path):
    path = tmp_path / "empty.ckpt"
    atomic_torch_save({"global_step": 3}, path)
    with pytest.raises(CheckpointError, match=f"^{path} has no state_dict: not a training checkpoint$"):
        resolve_ckpt_path(str(path), tmp_path)


@pytest.mark.usefixtures("one_thread")
def test_resume_auto_after_a_schedule_change_starts_fresh(make_cfg, tmp_path):
    """End to end: the same name, another schedule: the second run trains from step 0."""
    base = [*TINY_MLP, *QUIET, *every(2), "name=shared", f"paths.output_root={tmp_path}"]
    first = train(make_cfg(*base, "trainer.max_steps=4", run_dir=tmp_path / "shared" / "a"))
    assert first["global_step"] == 4
    second = make_cfg(*base, "trainer.max_steps=6", "schedule=linear", "resume=auto",
                      run_dir=tmp_path / "shared" / "b")
    steps = sorted(p.name for p in (tmp_path / "shared" / "a" / "checkpoints").glob("step*.ckpt"))
    train(second)
    b_steps = sorted(p.name for p in (tmp_path / "shared" / "b" / "checkpoints").glob("step*.ckpt"))
    assert steps == ["step0000002.ckpt", "step0000004.ckpt"]
    assert b_steps == ["step0000002.ckpt", "step0000004.ckpt", "step0000006.ckpt"]  # from 0, not 4


def test_a_key_from_another_version_is_not_another_run(make_cfg):
    from diffusion_lab.tasks.resume import config_difference

    mine = config_to_dict(make_cfg())
    older = config_to_dict(make_cfg())
    del older["trainer"]["accumulate_grad_batches"], older["module"]["clip_denoised"]
    assert config_difference(older, mine) is None
    older["module"]["ema_decay"] = 0.9
    assert config_difference(older, mine) == "module.ema_decay: 0.9 in the checkpoint, 0.995 in this run"
