"""objective=flow end to end: trains, its checkpoint records the path, every sampler (the
flow ones and the sigma-space ones) samples it; bad flow options are refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.parametrization import FlowVelocityPrediction
from diffusion_lab.paths import LinearFlowPath
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import dpmpp_2m, flow_euler, flow_midpoint, heun
from diffusion_lab.samplers.flow import UniformTimeSpacing
from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.train import train
from diffusion_lab.tasks.validate import ConfigError, validate_train_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["experiment=toy2d_moons", "backbone.hidden=32", "backbone.depth=2",
        "data.module.dataset.n=400", "data.module.batch_size=64", "logger=none",
        "trainer.enable_progress_bar=false", "eval.enabled=false", "callbacks=none"]


def test_flow_model_trains_and_samples_with_every_kind_of_sampler(make_cfg, tmp_path):
    train(make_cfg(*TINY, "objective=flow", "trainer.max_steps=30", "trainer.val_check_interval=15",
                   "sampler=flow_euler", run_dir=tmp_path / "run"))
    ckpt = load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["diffusion_lab_config"]["schedule"]["_target_"] == "diffusion_lab.paths.LinearFlowPath"
    module = module_from_checkpoint(ckpt)
    assert isinstance(module.schedule, LinearFlowPath)
    assert isinstance(module.prediction, FlowVelocityPrediction)
    labels = torch.arange(64) % 2
    for spec in (None, SamplerSpec(flow_midpoint, UniformTimeSpacing(), 5),
                 SamplerSpec(dpmpp_2m, LogSNRSpacing(), 10), SamplerSpec(heun, LogSNRSpacing(), 5)):
        x = module.sample(labels=labels, seed=0, sampler=spec)
        assert x.shape == (64, 2) and bool(torch.isfinite(x).all())
    assert module.sampler.solver.func is flow_euler


@pytest.mark.parametrize(("overrides", "message"), [
    (["objective=flow", "schedule=cosine"], "FlowVelocityPrediction needs the linear path but the schedule is a vp path"),
    (["objective=v", "schedule=linear_flow"], "VPrediction needs the vp path but the schedule is a linear path"),
    (["objective=flow", "objective.timesteps.scale=0"], "logit-normal scale must be > 0, got 0"),
    (["objective=flow", "schedule.t_max=1.0"], "need 0 < t_min < t_max < 1"),
    (["sampler=flow_euler", "sampler.spacing.shift=-1"], "shift must be > 0, got -1"),
])
def test_bad_flow_options_are_refused_in_one_line(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as info:
        validate_train_config(make_cfg(*overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_exits_2_on_a_flow_objective_with_a_vp_schedule(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "objective=flow",
                          "schedule=cosine", "logger=none", f"paths.output_root={tmp_path}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2, res.stderr[-1500:]
    assert "error: objective" in res.stderr or "error:" in res.stderr
    assert "needs the linear path" in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.rglob("*.ckpt"))
