"""Regression tests: sampler=ddpm from a checkpoint, Heun's float32 precision at the cosine
schedule's sigma_max, and one-step leading/quadratic grids."""

import math

import pytest
import torch
from omegaconf.errors import InterpolationKeyError

from diffusion_lab.discretization import LeadingSpacing, QuadraticSpacing, UniformSpacing
from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.samplers import euler, heun
from diffusion_lab.schedules import cosine_schedule, linear_schedule
from diffusion_lab.tasks.build import adopt_checkpoint_schedule, build_sampler


@pytest.mark.parametrize("sampler", ["ddpm", "ddpm_large"])
def test_ddpm_sampling_config_takes_t_from_the_checkpoint(make_cfg, sampler):
    """sample.py composes no schedule group: sampler.steps = ${schedule.num_steps} must come from
    the schedule stored in the checkpoint (here T = 50)."""
    cfg = make_cfg(f"sampler={sampler}", "ckpt=unused.ckpt", config_name="sample")
    with pytest.raises(InterpolationKeyError):
        build_sampler(cfg)
    stored = {"_target_": "diffusion_lab.schedules.linear_schedule", "num_steps": 50}
    adopt_checkpoint_schedule(cfg, {"diffusion_lab_config": {"schedule": stored}})
    assert build_sampler(cfg).steps == 50


def test_adopted_schedule_leaves_an_explicit_one_alone(make_cfg):
    cfg = make_cfg("sampler=ddpm")  # the training config has its own schedule group
    adopt_checkpoint_schedule(cfg, {"diffusion_lab_config": {"schedule": {"num_steps": 50}}})
    assert build_sampler(cfg).steps == cfg.schedule.num_steps == 1000


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_heun_float32_keeps_precision_at_large_sigma(steps):
    """Cosine schedule, trailing grid from sigma ~ 2e4: float32 Heun stays within 2e-4 of its
    float64 run (the x + (s'-s)(d + d')/2 form lost ~1e-3 there). The bound is Heun's own
    sensitivity to rounding in D, (s / 2 s') * 6e-8 * |D| at the first step's ratio."""
    oracle = GaussianOracle.random(dim=16)
    sigmas = UniformSpacing()(cosine_schedule(), steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g, dtype=torch.float64) * sigmas[0]
    err = (heun(oracle, x.float(), sigmas).double() - heun(oracle, x, sigmas)).abs().max()
    assert err < 2e-4
    err_euler = (euler(oracle, x.float(), sigmas).double() - euler(oracle, x, sigmas)).abs().max()
    assert err_euler < 1e-5


@pytest.mark.parametrize("spacing", [LeadingSpacing(), QuadraticSpacing()], ids=["leading", "quadratic"])
@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule], ids=["linear", "cosine"])
def test_one_step_grid_starts_from_noise(spacing, make):
    """steps=1 must denoise from a noisy level: t=0 would return the input noise, W2 ~ 1."""
    schedule = make()
    sigmas = spacing(schedule, 1)
    assert sigmas.shape == (2,) and sigmas[1] == 0
    assert sigmas[0] >= schedule.sigmas[int(0.8 * schedule.num_steps)]
    oracle = GaussianOracle.random(dim=8)
    w2 = oracle.w2(*affine_output_law(euler, oracle, sigmas, oracle.dim))
    # one Euler step from pure noise returns ~ the data mean: W2 ~ the data's spread
    assert w2 < 1.05 * math.sqrt(float((oracle.std**2).sum()))
    from_t0 = torch.tensor([schedule.sigma_min, 0.0], dtype=torch.float64)  # the old grid
    assert w2 < oracle.w2(*affine_output_law(euler, oracle, from_t0, oracle.dim))


def test_sample_py_with_sampler_ddpm_runs_from_a_checkpoint(make_cfg, tmp_path):
    """The README's `sample.py ckpt=... sampler=ddpm`, no sampler.steps given: the config check
    before the checkpoint opens must not resolve ${schedule.num_steps}; the run then takes all
    T = 30 steps of the checkpoint's schedule."""
    from test_validation import write_checkpoint

    from diffusion_lab.tasks.sample import sample

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt", "schedule.num_steps=30")
    run_dir = tmp_path / "sample"
    run_dir.mkdir()
    info = sample(make_cfg(f"ckpt={path}", "sampler=ddpm", "samples_per_class=1", "metrics=false",
                           config_name="sample", run_dir=run_dir))
    assert info["steps"] == 30 and info["nfe_per_sample"] == 30 and info["num_samples"] == 10
