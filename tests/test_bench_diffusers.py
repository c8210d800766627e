"""Side by side with diffusers (the bench extra): like-for-like models, and the sampler
comparison is exact where both libraries implement the same method."""

from __future__ import annotations

import functools

import pytest
import torch
from test_bench import load_script

from diffusion_lab.bench.timing import native_bf16
from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.samplers import solver_nfe

pytest.importorskip("diffusers")
from diffusion_lab.bench import diffusers_grid, diffusers_models
from diffusion_lab.bench import diffusers_schedulers as dfs
from diffusion_lab.bench.search import REFUSED


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
                         "--batch", "2"])
    rows = result["diffusers"]
    # fp32 always; bf16-autocast rows too where this machine runs bf16 natively; per precision
    # the matched row (both in the default layout) and the best of each
    precisions = ["fp32", "bf16-autocast"] if native_bf16(torch.device("cpu")) else ["fp32"]
    assert [(r["precision"], r["setting"]) for r in rows] == [
        (p, s) for p in precisions for s in ("matched (default layout)", "best of each")]
    for row in rows:
        assert row["params_ours"] == row["params_diffusers"] == 176_849 and row["param_matched"]
        assert row["ratio"] == pytest.approx(row["ours_img_per_s"] / row["diffusers_img_per_s"],
                                             rel=1e-2)
    for matched, best in zip(rows[::2], rows[1::2]):
        assert matched["ours_config"] == matched["diffusers_config"] == "default"
        # the best of each side is the fastest of the layouts it was measured in
        assert best["ours_img_per_s"] == max(best["all_ours"].values()) >= matched["ours_img_per_s"]
        assert best["diffusers_img_per_s"] == max(best["all_diffusers"].values())
        assert set(best["all_ours"]) == set(best["all_diffusers"]) == {"default", "channels_last"}


ROWS = None


def _row(name):
    global ROWS
    ROWS = ROWS or {r.name: r for r in diffusers_grid.rows()}
    return ROWS[name]


@pytest.mark.parametrize("schedule_name", ["cosine", "linear"])
def test_diffusers_schedulers_agree_with_ours_where_they_are_the_same_method(schedule_name):
    """Same method, same exact predictor, same output law: DDIM (trailing) is Euler on the
    uniform grid, Heun is Heun, DDPM is DDPM (its noise replaced by unit draws: the law of a
    stochastic scheduler is exact too), and DPM-Solver++ 2M with use_lu_lambdas is our dpmpp_2m
    on the log-SNR grid over the full sigma range."""
    from diffusion_lab.discretization import LogSNRSpacing, UniformSpacing
    from diffusion_lab.samplers import ddpm, dpmpp_2m, euler, heun
    from diffusion_lab.schedules import cosine_schedule, linear_schedule

    schedule = {"cosine": cosine_schedule, "linear": linear_schedule}[schedule_name]()
    oracle = GaussianOracle.random(dim=8, seed=1)
    pairs = [
        ("DDIM", {"timestep_spacing": "trailing"}, euler, UniformSpacing(), 10, 10),
        ("Heun", {"timestep_spacing": "trailing"}, heun, UniformSpacing(), 10, 19),
        ("DDPM", {"timestep_spacing": "trailing", "variance_type": "fixed_small"}, ddpm,
         UniformSpacing(), 10, 10),
        ("DPM-Solver++ 2M", {"timestep_spacing": "linspace", "use_lu_lambdas": True,
                             "solver_type": "midpoint"}, dpmpp_2m, LogSNRSpacing(skip_tail=False),
         8, 8),
    ]
    for name, cfg, solver, spacing, steps, nfe in pairs:
        ours = oracle.w2(*affine_output_law(solver, oracle, spacing(schedule, steps), 8))
        sched = dfs.build(_row(name), cfg, schedule)
        mean, std, their_nfe = dfs.diffusers_output_law(sched, oracle, schedule, steps)
        assert their_nfe == nfe, name
        # DDIM's last step goes to alpha = 1 through its own alpha_prod arithmetic (2e-4 apart);
        # Heun's first cosine step (sigma 20,291 -> 8) amplifies rounding by s / 2s' ~ 1250
        rel = {"DDIM": 2e-3, "Heun": 1e-2}.get(name, 1e-3)  # diffusers keeps some sigmas in fp32
        assert oracle.w2(mean, std) == pytest.approx(ours, rel=rel), name
        assert ours > 0.01  # visibly inexact at these step counts: the agreement is not trivial


@pytest.mark.parametrize("schedule_name", ["cosine", "linear"])
def test_diffusers_singlestep_is_our_dpmpp_2s_on_its_grid(schedule_name):
    """diffusers' DPM-Solver++ 2S (singlestep, final_sigmas_type="zero") is our dpmpp_2s, both
    solver types, odd and even step counts (its pairing of intervals: orders 1, 2, 1, 2, ..., 1),
    when ours runs on the sigmas the scheduler itself chose."""
    from diffusion_lab.samplers import dpmpp_2s
    from diffusion_lab.schedules import cosine_schedule, linear_schedule

    schedule = {"cosine": cosine_schedule, "linear": linear_schedule}[schedule_name]()
    oracle = GaussianOracle.random(dim=8, seed=1)
    for variant in ("midpoint", "heun"):
        for steps in (7, 8):
            cfg = {"timestep_spacing": "trailing", "solver_type": variant,
                   "final_sigmas_type": "zero", "lower_order_final": True}
            sched = dfs.build(_row("DPM-Solver++ 2S (singlestep)"), cfg, schedule)
            sched.set_timesteps(steps)
            sigmas = sched.sigmas.to(torch.float64)
            solver = functools.partial(dpmpp_2s, variant=variant)
            ours = oracle.w2(*affine_output_law(solver, oracle, sigmas, 8))
            mean, std, their_nfe = dfs.diffusers_output_law(sched, oracle, schedule, steps)
            assert their_nfe == steps == solver_nfe(solver, steps)
            # diffusers keeps sigmas in float32: 1e-7 apart on linear, 1e-3 at cosine's 20,291
            assert oracle.w2(mean, std) == pytest.approx(ours, rel=2e-3), (variant, steps)
            assert ours > 0.01


def test_every_diffusers_row_builds_and_samples():
    """Each method of the grid runs with finite output in at least one end configuration (no row
    of the comparison silently empty)."""
    from diffusion_lab.schedules import linear_schedule

    schedule, oracle = linear_schedule(), GaussianOracle.random(dim=4, seed=0)
    for row in diffusers_grid.rows():
        works = 0
        for end in row.end_configs():  # some defaults are refused (dpmsolver with final zero)
            try:
                sched = dfs.build(row, {**row.grid_configs()[0], **end}, schedule)
                mean, _, nfe = dfs.diffusers_output_law(sched, oracle, schedule, 6)
            except REFUSED:  # what the search skips too (refused options, singular solves)
                continue
            assert nfe >= 6, row.name
            works += bool(torch.isfinite(mean).all())  # some combinations give NaN (skipped)
        assert works, row.name


def test_sampler_comparison_small():
    from diffusion_lab.bench.sampler_table import comparison, format_winners

    said = []
    table = comparison(budgets=(4,), schedules=("linear",), samples=500,
                       ours=["dpmpp_2m", "dpmpp_3m"], theirs=["DPM-Solver++ 2M", "UniPC (bh2) 2"],
                       progress=said.append)
    # each method searched is announced, in order, with its place among those searched
    assert said[1:5] == ["  diffusion-lab 1/2: dpmpp_2m", "  diffusion-lab 2/2: dpmpp_3m",
                         "  diffusers 1/2: DPM-Solver++ 2M", "  diffusers 2/2: UniPC (bh2) 2"]
    assert {(w["case"], w["budget"]) for w in table["winners"]} == {("gaussian", 4), ("mixture", 4)}
    for w in table["winners"]:
        for lib in ("diffusion-lab", "diffusers"):
            assert w[lib]["nfe"] <= 4 and w[lib]["error"] > 0
        assert w["ratio"] == pytest.approx(w["diffusion-lab"]["error"] / w["diffusers"]["error"])
    mixture = next(w for w in table["winners"] if w["case"] == "mixture")
    assert 0 < mixture["floor"] < mixture["diffusers"]["error"]
    methods = {r["method"] for r in table["rows"]}
    assert methods == {"dpmpp_2m", "dpmpp_3m", "DPM-Solver++ 2M", "UniPC (bh2) 2"}
    assert "gaussian" in format_winners(table)


def test_benchmark_samplers_flag_prints_the_winners(capsys):
    bench = load_script("benchmark")
    result = bench.main(["--models", "--diffusers", "--samplers", "--budgets", "3",
                         "--sampler-cases", "gaussian", "--sampler-methods", "dpmpp_2m",
                         "DPM-Solver++ 2M"])
    assert {w["schedule"] for w in result["samplers"]["winners"]} == {"linear", "cosine"}
    out = capsys.readouterr().out
    assert "winners per budget" in out and "DPM-Solver++ 2M" in out
    from diffusion_lab.bench.readme import render

    assert "best diffusers" in render({**result, "throughput": [], "diffusers": [], "options": []})


def test_adapter_drives_a_project_denoiser_like_our_sampler():
    """A VP eps-network (the exact Gaussian one) through the adapter: diffusers' DDIM (trailing)
    gives our Euler-on-uniform samples from the same per-sample seeds; DPM-Solver++ 2M with
    use_lu_lambdas gives our dpmpp_2m on the full log-SNR grid."""
    from diffusion_lab.bench.diffusers_adapter import diffusers_sample
    from diffusion_lab.discretization import LogSNRSpacing, UniformSpacing
    from diffusion_lab.parametrization import EpsPrediction
    from diffusion_lab.precond import VPDenoiser
    from diffusion_lab.sampler_spec import SamplerSpec
    from diffusion_lab.samplers import dpmpp_2m, euler
    from diffusion_lab.schedules import cosine_schedule

    sch, oracle = cosine_schedule(), GaussianOracle.random(dim=6, seed=2)
    net = VPDenoiser(oracle.backbone(sch, EpsPrediction()), sch, EpsPrediction())
    cases = [("DDIM", {"timestep_spacing": "trailing"}, SamplerSpec(euler, UniformSpacing(), 8)),
             ("DPM-Solver++ 2M", {"timestep_spacing": "linspace", "use_lu_lambdas": True,
                                  "solver_type": "midpoint"},
              SamplerSpec(dpmpp_2m, LogSNRSpacing(skip_tail=False), 8))]
    for name, cfg, spec in cases:
        theirs = diffusers_sample(net, sch, _row(name), cfg, 8, (5, 6), seed=4, indices=range(3, 8))
        ours = spec.sample(net, sch, (5, 6), seed=4, indices=range(3, 8))
        assert torch.allclose(theirs, ours, atol=2e-3), name
        assert (ours - oracle.mean.float()).abs().max() > 0.05  # real samples, not the mean
