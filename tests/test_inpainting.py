"""Inpainting: the known pixels are kept exactly, replacement's bias and RePaint's correction on
a correlated Gaussian whose conditional law is closed-form, and scripts/inpaint.py end to end."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from conftest import refusal_line
from test_validation import write_checkpoint

from diffusion_lab.discretization import LogSNRSpacing, UniformSpacing
from diffusion_lab.inpainting import known_region_denoiser, repaint, repaint_nfe
from diffusion_lab.samplers import CountingDenoiser, ddpm, dpmpp_2m
from diffusion_lab.schedules import linear_schedule
from diffusion_lab.tasks.errors import ConfigError

RHO, Y1 = 0.9, 1.5  # x ~ N(0, [[1, rho], [rho, 1]]); x1 = 1.5 known


def correlated_gaussian_denoiser(x, sigma, cond=None):
    """The exact D for N(0, S): S (S + sigma^2 I)^-1 x."""
    cov = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=torch.float64)
    gain = cov @ torch.linalg.inv(cov + sigma.view(-1, 1, 1) ** 2 * torch.eye(2, dtype=torch.float64))
    return (gain @ x.unsqueeze(-1)).squeeze(-1)


def draw(sampler, sigmas, n=2000, **kw):
    g = torch.Generator().manual_seed(0)
    known = torch.tensor([[Y1, 0.0]], dtype=torch.float64).expand(n, 2)
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64)
    denoiser = CountingDenoiser(known_region_denoiser(correlated_gaussian_denoiser, known, mask))
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * math.sqrt(1 + float(sigmas[0]) ** 2)
    out = sampler(denoiser, x, sigmas, noise=lambda like: torch.randn(like.shape, generator=g,
                                                                       dtype=like.dtype), **kw)
    return out, denoiser.nfe


def test_known_pixels_are_kept_exactly_by_every_sampler():
    for sampler, sigmas in ((dpmpp_2m, LogSNRSpacing()(linear_schedule(), 10)),
                            (ddpm, UniformSpacing()(linear_schedule(), 50)),
                            (repaint, UniformSpacing()(linear_schedule(), 10))):
        out, _ = draw(sampler, sigmas, n=200)
        assert torch.equal(out[:, 0], torch.full((200,), Y1, dtype=torch.float64))


def test_repaint_corrects_replacements_bias_towards_the_exact_conditional():
    """Exact: x2 | x1 = 1.5 ~ N(rho * 1.5, 1 - rho^2) = N(1.35, 0.436^2)."""
    exact_mean, exact_std = RHO * Y1, math.sqrt(1 - RHO**2)
    sigmas = UniformSpacing()(linear_schedule(), 100)
    plain, nfe_plain = draw(repaint, sigmas, resample=1)
    mixed, nfe_mixed = draw(repaint, sigmas, resample=20)
    assert nfe_plain == repaint_nfe(100, 1) == 100 and nfe_mixed == repaint_nfe(100, 20) == 1981
    # replacement alone: the unknown coordinate hardly follows the known one
    assert exact_mean - plain[:, 1].mean() > 0.3 and plain[:, 1].std() > 1.2 * exact_std
    # resampled 20 times per level: within 0.05 of the conditional mean (sampling error ~0.01)
    assert abs(mixed[:, 1].mean() - exact_mean) < 0.05
    assert abs(mixed[:, 1].std() - exact_std) < 0.1
    with pytest.raises(ValueError, match="resample must be an integer >= 1"):
        draw(repaint, sigmas, resample=0)


def test_region_masks_hide_what_they_name():
    from diffusion_lab.tasks.inpaint import region_mask

    centre = region_mask("center", (1, 8, 8))
    assert centre.shape == (1, 8, 8) and centre.sum() == 64 - 16 and centre[0, 2:6, 2:6].sum() == 0
    assert region_mask("left", (1, 8, 8))[0, :, :4].sum() == 0
    assert region_mask("left", (1, 8, 8))[0, :, 4:].sum() == 32
    assert region_mask("bottom", (3, 8, 8))[0, 4:].sum() == 0
    noisy = region_mask("random", (1, 28, 28), fraction=0.3, seed=1)
    assert abs((1 - noisy.mean()).item() - 0.3) < 0.06
    assert torch.equal(noisy, region_mask("random", (1, 28, 28), fraction=0.3, seed=1))


def inpaint_cfg(make_cfg, path, run_dir, *overrides):
    return make_cfg(f"ckpt={path}", "images=3", "samples_per_image=2", "sampler.steps=3",
                    "classify=false", *overrides, config_name="inpaint", run_dir=run_dir)


@pytest.mark.parametrize("resample", [1, 3])
def test_inpaint_keeps_the_known_pixels_and_writes_grid_and_info(make_cfg, tmp_path, resample):
    from diffusion_lab.tasks.inpaint import inpaint

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    run_dir = tmp_path / "inpaint"
    run_dir.mkdir()
    info = inpaint(inpaint_cfg(make_cfg, path, run_dir, f"resample={resample}", "mask=left"))
    assert info["known_max_error"] < 1e-6  # the known half is the image's own
    assert info["hidden_fraction"] == 0.5 and info["completion_rmse"] > 0
    assert info["nfe_per_sample"] == (3 if resample == 1 else repaint_nfe(3, resample))
    assert info["method"] == ("replacement" if resample == 1 else "repaint (resample=3)")
    saved = json.loads((run_dir / "inpaint_info.json").read_text())
    assert saved["images"] == info["images"] and len(info["images"]) == 3
    assert (run_dir / "inpaint.png").is_file()


@pytest.mark.parametrize("override, message", [
    ("mask=middle", "mask must be one of center, left, right, top, bottom, random"),
    ("random_fraction=1.5", "random_fraction must be in (0, 1)"),
    ("resample=0", "resample"),
    ("samples_per_image=0", "samples_per_image"),
])
def test_inpaint_refuses_bad_values(make_cfg, tmp_path, override, message):
    from diffusion_lab.tasks.inpaint import inpaint

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    with pytest.raises(ConfigError, match=re.escape(message)):
        inpaint(inpaint_cfg(make_cfg, path, tmp_path, override))


def test_the_inpaint_script_refuses_in_one_line(make_cfg, tmp_path):
    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    line = refusal_line("inpaint.py", f"ckpt={path}", "mask=middle",
                        f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert line.startswith("error: mask must be one of")
