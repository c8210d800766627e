"""Grids fitted to a model: the fit lowers the error on the exact Gaussian case, the file round
trip, readable errors, and the checkpoint -> optimize_grid.py -> sample.py path."""

import json

import pytest
import torch

from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.optimized_grid import (
    OptimizedSpacing,
    checked_on_held_out,
    fit_grid,
    grid_file,
    save_grids,
)
from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.samplers import dpmpp_2m
from diffusion_lab.schedules import linear_schedule


def test_fitted_grid_lowers_the_exact_error():
    """Fitted only against a fine solve of the model (no data): the exact W2 of 5-step DPM++(2M)
    drops at least 3x on Gaussian data (0.25 -> ~0.04 with these draws)."""
    oracle, sch = GaussianOracle.random(dim=16), linear_schedule()
    z = torch.randn(128, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    init = LogSNRSpacing()(sch, 5)
    grid, before, after = fit_grid(oracle, dpmpp_2m, init, z, fine=LogSNRSpacing()(sch, 300))
    assert after < 0.1 * before
    assert grid[0] == init[0] and grid[-2] == init[-2] and grid[-1] == 0  # ends kept
    assert bool((grid[:-1] > grid[1:]).all())
    w2_init = oracle.w2(*affine_output_law(dpmpp_2m, oracle, init, 16))
    w2_fit = oracle.w2(*affine_output_law(dpmpp_2m, oracle, grid, 16))
    assert w2_fit < w2_init / 3


def test_a_fitted_grid_is_kept_only_where_it_beats_its_start_on_held_out_noise():
    """optimize_grid.py checks each fitted grid on another draw: kept where it lowers the loss
    there (here the exact W2, the limit of infinitely many held-out draws), else the start."""
    oracle, sch = GaussianOracle.random(dim=16), linear_schedule()
    z = torch.randn(128, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    start = LogSNRSpacing()(sch, 5)
    fitted, _, _ = fit_grid(oracle, dpmpp_2m, start, z, fine=LogSNRSpacing()(sch, 300))
    seen = []

    def exact_w2(grid):
        seen.append(grid)
        return oracle.w2(*affine_output_law(dpmpp_2m, oracle, grid, 16))

    kept, (w2_start, w2_fitted) = checked_on_held_out(start, fitted, exact_w2)
    assert kept is fitted and w2_fitted < w2_start / 3 and seen == [start, fitted]
    worse = torch.cat([torch.linspace(float(start[0]), float(start[-2]), 5), start[-1:]])
    kept, (w2_start, w2_worse) = checked_on_held_out(start, worse, exact_w2)
    assert kept is start and w2_worse > w2_start  # a uniform-in-sigma grid: far worse
    kept, _ = checked_on_held_out(start, start.clone(), exact_w2)
    assert kept is start  # no gain, no change


def test_grid_file_round_trip_and_errors(tmp_path):
    sch = linear_schedule()
    ckpt = tmp_path / "last.ckpt"
    grid = LogSNRSpacing()(sch, 4)
    save_grids(grid_file(ckpt), {4: grid}, {"solver": "dpmpp_2m"})
    save_grids(grid_file(ckpt), {6: LogSNRSpacing()(sch, 6)}, {"solver": "dpmpp_2m"})
    assert grid_file(ckpt).name == "last.grids.json"
    assert sorted(json.loads(grid_file(ckpt).read_text())["grids"]) == ["4", "6"]
    assert torch.equal(OptimizedSpacing(ckpt)(sch, 4), grid)
    assert torch.equal(OptimizedSpacing(grid_file(ckpt))(sch, 4), grid)
    with pytest.raises(ValueError, match="optimize_grid.py"):
        OptimizedSpacing(ckpt)(sch, 5)
    with pytest.raises(ValueError, match="needs a checkpoint"):
        OptimizedSpacing(None)(sch, 4)
    save_grids(grid_file(ckpt), {3: torch.tensor([1.0, 2.0, 0.5, 0.0])}, {})
    with pytest.raises(ValueError, match="descending"):
        OptimizedSpacing(ckpt)(sch, 3)


def test_one_grids_file_holds_one_solvers_grids_and_sampling_with_another_warns(tmp_path):
    """Grids of another solver (or guidance scale) replace the file's, never merge with them,
    and a SamplerSpec on the optimized spacing warns when its solver is not the fitted one."""
    import functools
    import warnings

    from diffusion_lab.optimized_grid import solver_signature
    from diffusion_lab.sampler_spec import SamplerSpec
    from diffusion_lab.samplers import euler, unipc

    sch, ckpt = linear_schedule(), tmp_path / "last.ckpt"
    two_m = {"solver_signature": solver_signature(dpmpp_2m), "guidance_scale": 1.0}
    assert not save_grids(grid_file(ckpt), {4: LogSNRSpacing()(sch, 4)},
                          {**two_m, "fit_loss": {"4": [0.2, 0.1]}})
    assert not save_grids(grid_file(ckpt), {6: LogSNRSpacing()(sch, 6)},
                          {**two_m, "fit_loss": {"6": [0.05, 0.02]}})  # merged, losses too
    assert json.loads(grid_file(ckpt).read_text())["fit_loss"] == {"4": [0.2, 0.1],
                                                                    "6": [0.05, 0.02]}
    # a file without "objective" holds distance grids: merged with distance, replaced by fid
    assert not save_grids(grid_file(ckpt), {7: LogSNRSpacing()(sch, 7)},
                          {**two_m, "objective": "distance"})
    assert sorted(json.loads(grid_file(ckpt).read_text())["grids"]) == ["4", "6", "7"]
    assert save_grids(grid_file(ckpt), {4: LogSNRSpacing()(sch, 4)}, {**two_m, "objective": "fid"})
    assert sorted(json.loads(grid_file(ckpt).read_text())["grids"]) == ["4"]
    grid_file(ckpt).unlink()
    assert not save_grids(grid_file(ckpt), {4: LogSNRSpacing()(sch, 4)},
                          {**two_m, "fit_loss": {"4": [0.2, 0.1]}})
    assert not save_grids(grid_file(ckpt), {6: LogSNRSpacing()(sch, 6)},
                          {**two_m, "fit_loss": {"6": [0.05, 0.02]}})
    assert save_grids(grid_file(ckpt), {5: LogSNRSpacing()(sch, 5)},
                      {**two_m, "guidance_scale": 2.0})  # another w: replaced
    assert sorted(json.loads(grid_file(ckpt).read_text())["grids"]) == ["5"]
    assert "fit_loss" not in json.loads(grid_file(ckpt).read_text())  # went with its grids
    signature = solver_signature(functools.partial(euler))
    assert save_grids(grid_file(ckpt), {5: LogSNRSpacing()(sch, 5)},
                      {"solver_signature": signature, "guidance_scale": 2.0})
    # defaults filled in: a partial without options is the bare function
    assert signature == solver_signature(euler) == "euler()"
    assert solver_signature(functools.partial(unipc, order=3)) != solver_signature(unipc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SamplerSpec(euler, OptimizedSpacing(ckpt), 5).sigmas(sch)  # the fitted solver: silent
    with pytest.warns(UserWarning, match=r"fitted for euler\(\), sampling with dpmpp_2m\(\)"):
        SamplerSpec(dpmpp_2m, OptimizedSpacing(ckpt), 5).sigmas(sch)


@pytest.mark.slow
def test_checkpoint_fit_then_sample(make_cfg, tmp_path):
    from test_train import BACKBONES, FAST, run_script

    from diffusion_lab.tasks.train import train

    run_dir = tmp_path / "run"
    train(make_cfg(*BACKBONES["unet"], *FAST, run_dir=run_dir))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    fit = run_script("optimize_grid.py", str(ckpt), "--steps", "3", "--samples", "4",
                     "--fine", "8", "--sweeps", "1")
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "3" in json.loads(grid_file(ckpt).read_text())["grids"]
    # case 3 of the sampler comparison on this checkpoint, the fitted grid among the candidates
    report = run_script("sampler_report.py", "--ckpt", str(ckpt), "--budgets", "3",
                        "--score-samples", "20", "--search-samples", "4", "--fine", "8",
                        "--ours", "dpmpp_2m", "--theirs", "DPM-Solver++ 2M", "--finalists", "1",
                        "--json", str(tmp_path / "case3.json"))
    assert report.returncode == 0, report.stderr[-2000:]
    table = json.loads((tmp_path / "case3.json").read_text())
    assert table["fitted"] == {"dpmpp_2m": [3]} and table["score_samples"] == 20
    assert {r["library"] for r in table["rows"]} == {"diffusion-lab", "diffusers"}
    assert all(r["nfe"] <= 3 and 0 <= r["accuracy"] <= 1 for r in table["rows"])
    # the saved finalists re-scored at two seeds without a new search; seed 0 is the same draw
    # a second solver's grids fitted into a file of their own (one solver per grids file)
    euler_grids = tmp_path / "euler.grids.json"
    fit = run_script("optimize_grid.py", str(ckpt), "--steps", "3", "--samples", "4", "--fine",
                     "8", "--max-evals", "20", "--solver", "euler", "--out", str(euler_grids),
                     "--fit-ends")
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "(the closest schedule grid)" in fit.stdout
    assert "held-out noise (seed 1235)" in fit.stdout  # --seed 1234 + 1
    info = json.loads(euler_grids.read_text())
    check = info["holdout"]["3"]
    assert check["seed"] == 1235 and check["kept"] == ("fitted" if check["fitted"] < check["start"]
                                                       else "start")
    assert info["solver_signature"] == "euler()" and info["fit_ends"] is True
    assert json.loads(grid_file(ckpt).read_text())["solver"] == "dpmpp_2m"  # left alone
    # fitted for the data (the judge's FID of the fit samples) rather than for the fine solve
    fid_grids = tmp_path / "fid.grids.json"
    fit = run_script("optimize_grid.py", str(ckpt), "--steps", "3", "--samples", "20",
                     "--max-evals", "12", "--solver", "euler", "--objective", "fid",
                     "--fit-ends", "--out", str(fid_grids))
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "FID of 20 samples (seed 1234) to the training data" in fit.stdout
    fid_info = json.loads(fid_grids.read_text())
    assert fid_info["objective"] == "fid" and "fine_steps" not in fid_info
    assert set(fid_info["holdout"]["3"]) == {"seed", "start", "fitted", "kept"}
    (before, after), = fid_info["fit_loss"].values()
    assert after <= before and len(fid_info["grids"]["3"]) == 4
    again = run_script("sampler_report.py", "--ckpt", str(ckpt), "--rescore",
                       str(tmp_path / "case3.json"), "--score-seeds", "0", "1", "--json",
                       str(tmp_path / "rescored.json"), "--grids", str(grid_file(ckpt)),
                       str(euler_grids))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "searching" not in again.stdout and "mean +- std over seeds [0, 1]" in again.stdout
    rescored = json.loads((tmp_path / "rescored.json").read_text())
    assert rescored["score_samples"] == 20  # the saved table's count unless --score-samples
    assert rescored["fits"]["euler (= DDIM)"]["fit_ends"] is True  # how each grid was fitted
    assert rescored["fits"]["dpmpp_2m"]["objective"] == "distance"
    *finalists, fitted, fitted_euler = rescored["rows"]  # each file's fitted grid, after them
    for old, new in zip(table["rows"], finalists, strict=True):
        assert (new["method"], new["config"], new["seeds"]) == (old["method"], old["config"], [0, 1])
        assert new["fids"][0] == pytest.approx(old["fid"], rel=1e-6)
    assert (fitted["method"], fitted["config"], fitted["steps"]) == ("dpmpp_2m", "spacing=optimized", 3)
    assert fitted["fitted"] and fitted["seeds"] == [0, 1]
    assert (fitted_euler["method"], fitted_euler["steps"]) == ("euler (= DDIM)", 3)
    assert fitted_euler["fids"] != fitted["fids"]  # another solver on another grid
    only = run_script("sampler_report.py", "--ckpt", str(ckpt), "--rescore",
                      str(tmp_path / "case3.json"), "--fitted-only", "--json",
                      str(tmp_path / "only.json"))
    assert only.returncode == 0, only.stderr[-2000:]
    alone = json.loads((tmp_path / "only.json").read_text())
    assert [r["method"] for r in alone["rows"]] == ["dpmpp_2m"] and alone["fitted_only"]
    assert alone["rows"][0]["fids"] == [pytest.approx(fitted["fids"][0], rel=1e-6)]
    assert [r["reference"] for r in rescored["references"]] == [
        "default sampler", "default sampler, tail not skipped"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = run_script("sampler_report.py", "--ckpt", str(ckpt), "--rescore", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "not a table of sampler_report.py --ckpt" in bad.stderr
    common = [f"ckpt={ckpt}", f"paths.output_root={tmp_path}", "samples_per_class=1", "metrics=false",
              "sampler/spacing=optimized"]
    ok = run_script("sample.py", *common, "sampler.steps=3", "name=fitted")
    assert ok.returncode == 0, ok.stderr[-2000:]
    info = json.loads(next((tmp_path / "fitted").glob("*/sample_info.json")).read_text())
    assert info["spacing"] == "OptimizedSpacing" and info["nfe_per_sample"] == 3
    missing = run_script("sample.py", *common, "sampler.steps=4", "name=missing")
    assert missing.returncode == 2 and "optimize_grid.py" in missing.stderr
    assert run_script("optimize_grid.py", str(tmp_path / "nope.ckpt")).returncode == 2


def test_simplex_search_escapes_where_coordinate_descent_stalls():
    """Cosine schedule, 5-step DPM++(2M): one level at a time stalls (exact W2 ~0.11 with these
    draws); Nelder-Mead then Powell over all levels at once reaches a much lower error (~0.04),
    both from the log-SNR grid, with the same solve budget."""
    from diffusion_lab.schedules import cosine_schedule

    oracle, sch = GaussianOracle.random(dim=16), cosine_schedule()
    z = torch.randn(128, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    init, fine = LogSNRSpacing()(sch, 5), LogSNRSpacing()(sch, 300)
    reference = dpmpp_2m(oracle, z * (1 + float(fine[0]) ** 2) ** 0.5, fine)
    w2 = {}
    for method in ("coordinate", "simplex"):
        grid, before, after = fit_grid(oracle, dpmpp_2m, init, z, reference=reference,
                                       method=method, max_evals=600, sweeps=50)
        assert after < before and bool((grid[:-1] > grid[1:]).all())
        w2[method] = oracle.w2(*affine_output_law(dpmpp_2m, oracle, grid, 16))
    assert w2["simplex"] < 0.5 * w2["coordinate"], w2
    with pytest.raises(ValueError, match="simplex or coordinate"):
        fit_grid(oracle, dpmpp_2m, init, z, reference=reference, method="adam")


def test_fitting_the_ends_moves_them_inside_the_range_and_lowers_the_error():
    """Cosine schedule, 4-step Euler: with sigma_max and sigma_min fixed the fit stops at a
    distance of ~0.027 to the fine solve; fitting the ends too (``fit_ends``) lifts the last
    level above sigma_min (an evaluation at sigma_min barely changes x) and reaches ~0.017,
    with a lower exact W2. Every level stays inside the range."""
    from diffusion_lab.samplers import euler
    from diffusion_lab.schedules import cosine_schedule

    oracle, sch = GaussianOracle.random(dim=16), cosine_schedule()
    z = torch.randn(128, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    init, fine = LogSNRSpacing()(sch, 4), LogSNRSpacing()(sch, 300)
    reference = euler(oracle, z * (1 + float(fine[0]) ** 2) ** 0.5, fine)
    low, high = float(sch.sigma_min), float(sch.sigma_max)
    fixed, _, fixed_loss = fit_grid(oracle, euler, init, z, reference=reference, max_evals=400)
    free, before, free_loss = fit_grid(oracle, euler, init, z, reference=reference,
                                       max_evals=400, fit_ends=(low, high))
    assert before > fixed_loss and free_loss < 0.8 * fixed_loss
    assert free[-2] > 10 * low and free[0] <= high and free[-1] == 0 and len(free) == 5
    assert bool((free[:-1] > free[1:]).all())
    w2 = {name: oracle.w2(*affine_output_law(euler, oracle, g, 16))
          for name, g in (("fixed", fixed), ("free", free))}
    assert w2["free"] < w2["fixed"], w2
    with pytest.raises(ValueError, match="fit_ends needs method='simplex'"):
        fit_grid(oracle, euler, init, z, reference=reference, method="coordinate",
                 fit_ends=(low, high))


def test_a_grid_fitted_for_the_data_law_lowers_the_exact_error_without_a_fine_solve():
    """``objective``: the grid minimises a function of the few-step samples instead of their
    distance to a fine solve. Here the squared distance of the samples' per-dimension mean and
    std to the data law's (W2^2 between diagonal Gaussians; what FID is to features), for 4-step
    DPM++(2M) on the linear schedule with the ends fitted: the exact W2 of the output law falls
    at least 3x (0.65 -> ~0.09 with these draws), with no reference and no fine grid given."""
    oracle, sch = GaussianOracle.random(dim=16), linear_schedule()
    z = torch.randn(2000, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    calls = []

    def moments_gap(x):
        calls.append(len(x))
        return float((x.mean(0) - oracle.mean).pow(2).sum() + (x.std(0) - oracle.std).pow(2).sum())

    init = LogSNRSpacing()(sch, 4)
    trials = []
    grid, before, after = fit_grid(oracle, dpmpp_2m, init, z, objective=moments_gap,
                                   max_evals=300, on_trial=trials.append,
                                   fit_ends=(float(sch.sigma_min), float(sch.sigma_max)))
    assert calls and set(calls) == {2000} and len(calls) <= 300 + 1
    assert len(trials) == len(calls) and min(trials) == pytest.approx(after)  # each solve's loss
    assert after < 0.1 * before and bool((grid[:-1] > grid[1:]).all()) and grid[-1] == 0
    w2_init = oracle.w2(*affine_output_law(dpmpp_2m, oracle, init, 16))
    w2_fit = oracle.w2(*affine_output_law(dpmpp_2m, oracle, grid, 16))
    assert w2_fit < w2_init / 3, (w2_init, w2_fit)
    with pytest.raises(ValueError, match="give reference="):
        fit_grid(oracle, dpmpp_2m, init, z)  # neither an objective nor a reference


@pytest.mark.parametrize("argv, message", [
    (["c.ckpt", "--fit-ends", "--method", "coordinate"], "--fit-ends needs --method simplex"),
    (["c.ckpt", "--out", "no/such/folder/g.json"], "--out no/such/folder/g.json: no folder"),
    (["c.ckpt", "--objective", "fid", "--samples", "1"], "--objective fid needs --samples >= 2"),
    (["c.ckpt", "--seed", "7", "--holdout-seed", "7"], "--holdout-seed must differ from --seed"),
])
def test_optimize_grid_refuses_bad_options_before_loading_anything(argv, message, capsys):
    from test_bench import load_script

    with pytest.raises(SystemExit) as stop:
        load_script("optimize_grid").main(argv)  # c.ckpt does not exist: refused before it
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_fit_ends_starts_include_grids_whose_last_step_starts_above_sigma_min():
    """optimize_grid.py --fit-ends starts from the closest of the schedule grids: each spacing's
    n-step grid and its (n+1)-step grid less the last positive level (ending above sigma_min,
    as diffusers' sigma_min-final grids do); all valid n-step grids inside the range."""
    from test_bench import load_script

    from diffusion_lab.schedules import cosine_schedule

    script, sch = load_script("optimize_grid"), cosine_schedule()
    grids = script.start_grids(sch, 5)
    assert len(grids) == 2 * len(script.START_SPACINGS)
    for grid in grids:
        assert len(grid) == 6 and grid[-1] == 0 and bool((grid[:-1] > grid[1:]).all())
        assert grid[0] <= sch.sigma_max * (1 + 1e-9) and grid[-2] >= sch.sigma_min * (1 - 1e-9)
    whole, cut = grids[0::2], grids[1::2]
    assert all(float(g[-2]) > 5 * float(sch.sigma_min) for g in cut)
    assert any(abs(float(g[-2]) / float(sch.sigma_min) - 1) < 1e-6 for g in whole)
