"""SDEdit: the grid tail a strength keeps, the exact result on Gaussian data, and
scripts/img2img.py end to end with its refusals."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import refusal_line
from test_validation import write_checkpoint

from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.samplers import dpmpp_2m
from diffusion_lab.schedules import linear_schedule
from diffusion_lab.sdedit import sdedit_grid, sdedit_start
from diffusion_lab.tasks.errors import ConfigError


def test_strength_keeps_the_last_share_of_the_grid():
    sigmas = LogSNRSpacing()(linear_schedule(), 20)
    assert torch.equal(sdedit_grid(sigmas, 1.0), sigmas)
    half = sdedit_grid(sigmas, 0.5)
    assert len(half) == 11 and torch.equal(half, sigmas[10:]) and half[-1] == 0
    assert len(sdedit_grid(sigmas, 0.01)) == 2  # at least one step
    assert len(sdedit_grid(sigmas, 0.33)) == 8  # ceil(6.6) = 7 steps
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="strength must be in"):
            sdedit_grid(sigmas, bad)


def test_sdedit_on_gaussian_data_converges_to_the_exact_flow_at_second_order():
    """From y + sigma_0 z the ODE gives mu + sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_0^2) (x - mu)
    at every sigma; the solver's last step is D at the grid's smallest level."""
    oracle = GaussianOracle.random(dim=16, seed=0)
    g = torch.Generator().manual_seed(0)
    y = oracle.mean + oracle.std * torch.randn(64, 16, generator=g, dtype=torch.float64)
    z = torch.randn(64, 16, generator=g, dtype=torch.float64)
    errors = []
    for n in (40, 80, 160):
        sigmas = sdedit_grid(LogSNRSpacing()(linear_schedule(), n), 0.5)
        top, low = float(sigmas[0]), float(sigmas[-2])
        start = sdedit_start(y, top, z)
        exact = oracle(oracle.flow(start, top, low), torch.full((64,), low, dtype=torch.float64))
        errors.append(float((dpmpp_2m(oracle, start, sigmas) - exact).pow(2).mean().sqrt()))
    assert errors[-1] < 1e-4
    assert all(3.2 < errors[i] / errors[i + 1] < 4.8 for i in range(2)), errors


def img2img_cfg(make_cfg, path, run_dir, *overrides):
    return make_cfg(f"ckpt={path}", "images=3", "samples_per_image=2", "sampler.steps=4",
                    "classify=false", *overrides, config_name="img2img", run_dir=run_dir)


def test_img2img_runs_the_strengths_share_and_aims_at_the_next_class(make_cfg, tmp_path):
    from diffusion_lab.tasks.img2img import img2img

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    run_dir = tmp_path / "out"
    run_dir.mkdir()
    info = img2img(img2img_cfg(make_cfg, path, run_dir, "strength=0.5", "target_class=next"))
    assert info["steps_run"] == 2 and info["nfe_per_sample"] == 2 and info["grid_steps"] == 4
    assert info["target_classes"] == [1, 2, 3]  # images of classes 0, 1, 2
    assert info["rms_to_source"] > 0
    saved = json.loads((run_dir / "img2img_info.json").read_text())
    assert saved["start_sigma"] == info["start_sigma"] and (run_dir / "img2img.png").is_file()
    weaker = img2img(img2img_cfg(make_cfg, path, run_dir, "strength=0.25"))
    assert weaker["steps_run"] == 1 and weaker["start_sigma"] < info["start_sigma"]
    assert weaker["target_classes"] == [0, 1, 2]


@pytest.mark.parametrize("override, message", [
    ("strength=0", "strength must be in (0, 1], got 0"),
    ("target_class=-1", "target_class must be null, next or a class index >= 0"),
    ("target_class=12", "target_class=12: the model has 10 classes"),
    ("images=0", "images"),
])
def test_img2img_refuses_bad_values(make_cfg, tmp_path, override, message):
    from diffusion_lab.tasks.img2img import img2img

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    with pytest.raises(ConfigError, match=re.escape(message)):
        img2img(img2img_cfg(make_cfg, path, tmp_path, override))


def test_the_img2img_script_refuses_in_one_line(make_cfg, tmp_path):
    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    line = refusal_line("img2img.py", f"ckpt={path}", "strength=2",
                        f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert line.startswith("error: strength must be in (0, 1]")
