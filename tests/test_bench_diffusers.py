"""Side by side with diffusers (the bench extra): like-for-like models, and the sampler
comparison is exact where both libraries implement the same method."""

from __future__ import annotations

import itertools

import pytest
import torch
from test_bench import load_script

from diffusion_lab.bench.timing import native_bf16
from diffusion_lab.oracle import GaussianOracle, affine_output_law

pytest.importorskip("diffusers")
from diffusion_lab.bench import diffusers_models
from diffusion_lab.bench.diffusers_schedulers import (
    best_diffusers,
    diffusers_output_law,
    make_scheduler,
    sampler_efficiency,
)


def test_diffusers_unet_matches_our_ddpm_unet_parameter_for_parameter():
    from diffusion_lab.tasks.build import backbone_preset

    with torch.device("meta"):
        ours = backbone_preset("unet_ddpm_cifar10", image_size=32, channels=3)
        theirs = diffusers_models.unet2d_ddpm_cifar10()
    counts = [sum(p.numel() for p in m.parameters()) for m in (ours, theirs)]
    assert counts == [35_746_307, 35_746_307]


def test_diffusers_side_by_side_runs_at_tiny_size():
    bench = load_script("benchmark")
    result = bench.main(["--models", "--diffusers", "unet_tiny", "--warmup", "0", "--repeats", "1",
                         "--batch", "2", "--max-nfe", "4"])
    rows = result["diffusers"]
    # fp32 always; a bf16-autocast row too where this machine runs bf16 natively
    expected = ["fp32", "bf16-autocast"] if native_bf16(torch.device("cpu")) else ["fp32"]
    assert [row["precision"] for row in rows] == expected
    for row in rows:
        assert row["params_ours"] == row["params_diffusers"] == 176_849 and row["param_matched"]
        assert row["ratio"] == pytest.approx(row["ours_img_per_s"] / row["diffusers_img_per_s"],
                                             rel=1e-2)
        assert row["ours_gflop_per_s"] > 0 and row["diffusers_gflop_per_s"] > 0


@pytest.mark.parametrize("schedule_name", ["cosine", "linear"])
def test_diffusers_schedulers_agree_with_ours_where_they_are_the_same_method(schedule_name):
    """DDIM (eta=0, trailing) is Euler on the uniform grid, and Heun is Heun: with the same
    exact predictor both libraries land on the same output law."""
    from diffusion_lab.discretization import UniformSpacing
    from diffusion_lab.samplers import euler
    from diffusion_lab.schedules import cosine_schedule, linear_schedule

    schedule = {"cosine": cosine_schedule, "linear": linear_schedule}[schedule_name]()
    oracle = GaussianOracle.random(dim=8, seed=1)
    ours = oracle.w2(*affine_output_law(euler, oracle, UniformSpacing()(schedule, 10), 8))
    mean, std, nfe = diffusers_output_law(make_scheduler("DDIM", schedule, "trailing", False),
                                          oracle, schedule, 10)
    assert nfe == 10
    assert oracle.w2(mean, std) == pytest.approx(ours, rel=2e-3)
    assert ours > 0.05  # 10 Euler steps are visibly inexact: the agreement is not trivial


def test_diffusers_distance_falls_with_nfe_and_ours_is_at_most_half_at_10_nfe():
    from diffusion_lab.schedules import cosine_schedule

    schedule = cosine_schedule()
    oracle = GaussianOracle.random(dim=16, seed=0)
    w2 = [oracle.w2(*diffusers_output_law(make_scheduler("DPM-Solver++ 2M", schedule, "trailing",
                                                         False), oracle, schedule, n)[:2])
          for n in (5, 10, 25, 100)]
    assert all(a > b for a, b in itertools.pairwise(w2)), w2
    assert {r.scheduler for r in best_diffusers(oracle, schedule, 10)} >= {"DDIM", "UniPC (bh2)"}
    table = sampler_efficiency(max_nfe=10)
    assert table["ratio"] <= 0.5, table  # the target, on both schedules
