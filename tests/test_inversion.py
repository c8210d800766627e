"""DDIM inversion and slerp: orders against the exact flow of Gaussian data, round trips, and
scripts/interpolate.py end to end with its refusals."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from conftest import refusal_line
from test_validation import write_checkpoint

from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.inversion import invert, slerp
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.samplers import dpmpp_2m, euler
from diffusion_lab.schedules import cosine_schedule, linear_schedule
from diffusion_lab.tasks.errors import ConfigError


def gaussian_case():
    oracle = GaussianOracle.random(dim=16, seed=0, std_min=0.05, std_max=1.0)
    g = torch.Generator().manual_seed(0)
    x0 = oracle.mean + oracle.std * torch.randn(256, 16, generator=g, dtype=torch.float64)
    return oracle, x0


def inversion_error(oracle, x0, schedule, steps: int, order: int) -> float:
    """RMS distance (in unit-variance scale) of the inverted x(sigma_max) to the exact ODE map
    x(sigma_b) = mu + sqrt(s^2 + sigma_b^2) / sqrt(s^2 + sigma_a^2) (x(sigma_a) - mu)."""
    sigmas = LogSNRSpacing()(schedule, steps)
    top, start = float(sigmas[0]), float(sigmas[-2])
    exact = oracle.flow(x0, start, top)
    x_top = invert(oracle, x0, sigmas, order=order)
    return float((x_top - exact).pow(2).mean().sqrt()) / math.sqrt(1 + top**2)


@pytest.mark.parametrize("schedule", [linear_schedule, cosine_schedule])
@pytest.mark.parametrize("order", [1, 2])
def test_inversion_converges_at_its_order_to_the_exact_flow(schedule, order):
    oracle, x0 = gaussian_case()
    errors = [inversion_error(oracle, x0, schedule(), n, order) for n in (20, 40, 80)]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    # doubling the steps divides the error by 2^order
    assert all(0.9 * 2**order < r < 1.15 * 2**order for r in ratios), (errors, ratios)


def test_inverting_then_sampling_returns_the_image_up_to_the_start_level():
    oracle, x0 = gaussian_case()
    for solver, order in ((euler, 1), (dpmpp_2m, 2)):
        sigmas = LogSNRSpacing()(linear_schedule(), 160)
        back = solver(oracle, invert(oracle, x0, sigmas, order=order), sigmas)
        coarse = LogSNRSpacing()(linear_schedule(), 20)
        back_coarse = solver(oracle, invert(oracle, x0, coarse, order=order), coarse)
        fine_err = float((back - x0).pow(2).mean().sqrt())
        coarse_err = float((back_coarse - x0).pow(2).mean().sqrt())
        assert fine_err < coarse_err
        # what remains at 160 steps: the start x(sigma_1) = x0 and the last step D(x, sigma_1),
        # both O(sigma_1) = O(0.01) on data of std >= 0.05
        assert fine_err < (0.02 if order == 1 else 2e-3)
    with pytest.raises(ValueError, match="inversion order must be one of"):
        invert(oracle, x0, LogSNRSpacing()(linear_schedule(), 5), order=3)


def test_slerp_closed_forms():
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    assert torch.allclose(slerp(a, b, 0.5), (a + b) / math.sqrt(2))  # on the circle, not (a+b)/2
    third = slerp(a, b, 1 / 3)
    assert torch.allclose(third, torch.tensor([[math.cos(math.pi / 6), math.sin(math.pi / 6), 0.0]]))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 8, 8, generator=g)
    w = torch.randn(2, 1, 8, 8, generator=g)
    w = w * (z.flatten(1).norm(dim=1) / w.flatten(1).norm(dim=1))[:, None, None, None]
    mid = slerp(z, w, 0.5)
    assert mid.shape == z.shape
    assert torch.allclose(mid.flatten(1).norm(dim=1), z.flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.allclose(slerp(a, 2 * a, 0.25), 1.25 * a)  # parallel: the straight line
    with pytest.raises(ValueError, match="one shape"):
        slerp(a, torch.zeros(1, 2), 0.5)


def interpolate_cfg(make_cfg, path, run_dir, *overrides):
    return make_cfg(f"ckpt={path}", "pairs=2", "frames=3", "sampler.steps=3", "classify=false",
                    *overrides, config_name="interpolate", run_dir=run_dir)


def test_interpolate_writes_the_grid_and_the_reconstruction_error(make_cfg, tmp_path):
    from diffusion_lab.tasks.interpolate import interpolate

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    run_dir = tmp_path / "interp"
    run_dir.mkdir()
    info = interpolate(interpolate_cfg(make_cfg, path, run_dir, "sampler=ddim"))
    assert info["inversion_order"] == 1 and info["nfe_inversion"] == 2
    assert info["nfe_per_frame"] == 3 and info["pair_classes"] == [0, 1]
    assert len(info["reconstruction_rmse_per_image"]) == 4  # both ends of both pairs
    assert 0 <= info["reconstruction_rmse"] <= info["reconstruction_rmse_max"]
    saved = json.loads((run_dir / "interpolate_info.json").read_text())
    assert saved["reconstruction_rmse"] == info["reconstruction_rmse"]
    from PIL import Image

    grid = Image.open(run_dir / "interpolate.png")
    assert grid.width > grid.height  # 2 rows of real | 3 frames | real
    noise = interpolate(interpolate_cfg(make_cfg, path, run_dir, "source=noise"))
    assert "reconstruction_rmse" not in noise and noise["inversion_order"] == 2


@pytest.mark.parametrize("override, message", [
    ("sampler=ddpm", "ddpm has no deterministic inverse"),
    ("sampler.solver.eta=0.5", "ddim(eta=0.5) has no deterministic inverse"),
    ("frames=1", "frames must be an integer >= 2"),
    ("source=pixels", "source must be one of val, noise"),
    ("pairs=0", "pairs"),
])
def test_interpolate_refuses_what_it_cannot_do(make_cfg, tmp_path, override, message):
    from diffusion_lab.tasks.interpolate import interpolate

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    extra = ["sampler=ddim"] if override.startswith("sampler.solver") else []
    with pytest.raises(ConfigError, match=re.escape(message)):
        interpolate(interpolate_cfg(make_cfg, path, tmp_path, *extra, override))


def test_the_script_refuses_a_stochastic_sampler_in_one_line(make_cfg, tmp_path):
    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    line = refusal_line("interpolate.py", f"ckpt={path}", "sampler=ddpm",
                        f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert line.startswith("error: sampler: ddpm has no")
