"""Case 3 of the sampler comparison (bench/checkpoint_case.py) on a model whose answer is known:
the exact Gaussian denoiser stands in for the network, and the judge scores the samples' moments
against the data law, so the search measure, the finalists' scores and the winners are checked
against closed forms."""

import math

import pytest
import torch

pytest.importorskip("diffusers")

from diffusion_lab.bench.checkpoint_case import (
    CheckpointCase,
    checkpoint_comparison,
    format_checkpoint_winners,
    parse_config,
    rescore,
)
from diffusion_lab.discretization import LogSNRSpacing, UniformSpacing
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.samplers import dpmpp_2m, euler
from diffusion_lab.schedules import linear_schedule


class MomentJudge:
    """FID stand-in with a closed form: W2 between the samples' per-dimension moments and the
    data law; 'accuracy' is the share of samples within 3 std of the data mean in every dim."""

    def __init__(self, oracle: GaussianOracle) -> None:
        self.oracle = oracle

    def fid(self, x):
        return self.oracle.w2(x.double().mean(0), x.double().std(0))

    def accuracy(self, x, labels):
        z = (x.double() - self.oracle.mean) / self.oracle.std
        return float((z.abs() < 3).all(1).double().mean())


@pytest.fixture(scope="module")
def case():
    oracle = GaussianOracle.random(dim=16, seed=0)
    return oracle, CheckpointCase(lambda x, s, c=None: oracle(x.double(), s).float(),
                                  linear_schedule(), (16,), 0, search_samples=256, fine_steps=200)


def test_distance_to_the_fine_solve_falls_with_steps_and_order(case):
    _, c = case
    sch = c.schedule
    d = {n: c.ours(euler, UniformSpacing()(sch, n)) for n in (5, 10, 20)}
    assert d[5] > d[10] > d[20] > 0
    # first order: halving the step roughly halves the error (ratio 1.5..3)
    assert 1.5 < d[10] / d[20] < 3
    assert c.ours(dpmpp_2m, LogSNRSpacing()(sch, 20)) < 0.2 * d[20]  # second order does better
    # the same solve from the same noise in both libraries: DDIM (diffusers, trailing) == Euler
    from diffusion_lab.bench.sampler_table import their_scheduler

    ddim = their_scheduler(c, "DDIM", {"timestep_spacing": "trailing"})
    trailing = sch.t_to_sigma(torch.arange(999, 0, -100).double())  # t = 999, 899, ..., 99
    ours_trailing = c.ours(euler, torch.cat([trailing, torch.zeros(1, dtype=torch.float64)]))
    assert math.isclose(c.theirs(ddim, 10), ours_trailing, rel_tol=1e-3)


def test_comparison_scores_each_librarys_finalists_and_picks_the_lowest(case):
    oracle, c = case
    table = checkpoint_comparison(c, MomentJudge(oracle), (6,), ours=["dpmpp_2m", "euler (= DDIM)"],
                                  theirs=["DDIM", "DPM-Solver++ 2M"], finalists=2,
                                  score_samples=400, keep=1, depth=1)
    rows = table["rows"]
    assert {r["library"] for r in rows} == {"diffusion-lab", "diffusers"}
    assert all(r["nfe"] <= 6 for r in rows)
    for lib in ("diffusion-lab", "diffusers"):
        mine = [r for r in rows if r["library"] == lib]
        assert len(mine) == 2
        assert table["winners"][0][lib]["fid"] == min(r["fid"] for r in mine)
        assert mine[0]["distance"] <= mine[1]["distance"]  # finalists in search order
    w = table["winners"][0]
    assert w["fid_ratio"] == pytest.approx(w["diffusion-lab"]["fid"] / w["diffusers"]["fid"])
    # the judge's score of the winner is the closed-form W2 of its samples' moments
    assert w["diffusion-lab"]["method"] == "dpmpp_2m"
    assert table["score_samples"] == 400 and table["search_samples"] == 256


def test_several_seeds_score_each_finalist_once_per_seed_and_rank_by_the_mean(case):
    oracle, c = case
    judge = MomentJudge(oracle)
    sigmas = LogSNRSpacing()(c.schedule, 6)
    assert torch.equal(c.samples(64, solver=dpmpp_2m, sigmas=sigmas),
                       c.samples(64, solver=dpmpp_2m, sigmas=sigmas, seed=c.seed))
    assert not torch.equal(c.samples(64, solver=dpmpp_2m, sigmas=sigmas),
                           c.samples(64, solver=dpmpp_2m, sigmas=sigmas, seed=c.seed + 1))
    table = checkpoint_comparison(c, judge, (6,), ours=["dpmpp_2m", "euler (= DDIM)"],
                                  theirs=["DDIM"], finalists=2, score_samples=300, keep=1,
                                  depth=1, score_seeds=(3, 4, 5))
    assert table["score_seeds"] == [3, 4, 5]
    for row in table["rows"]:
        assert row["seeds"] == [3, 4, 5] and len(set(row["fids"])) == 3  # other noise per seed
        assert row["fid"] == pytest.approx(sum(row["fids"]) / 3)
        assert row["fid_std"] == pytest.approx(torch.tensor(row["fids"]).std().item())
    ours = [r for r in table["rows"] if r["library"] == "diffusion-lab"]
    assert table["winners"][0]["diffusion-lab"]["fid"] == min(r["fid"] for r in ours)
    # each per-seed score is the judge's closed form on that seed's samples
    from diffusion_lab.bench.sampler_table import our_configuration

    row = next(r for r in ours if r["method"] == "euler (= DDIM)")
    fn, grid = our_configuration(c, row["method"], row["options"], row["steps"])
    assert row["fids"][1] == pytest.approx(judge.fid(c.samples(300, solver=fn, sigmas=grid, seed=4)))


@pytest.mark.parametrize("options", [
    {}, {"spacing": "log_snr(full tail)"},
    {"timestep_spacing": "leading", "use_karras_sigmas": True, "final_sigmas_type": "sigma_min",
     "lower_order_final": False, "disable_corrector": [0, 1]},
    {"spacing": "quadratic", "eta": 0.5},
])
def test_a_saved_config_text_gives_back_its_options(options):
    from diffusion_lab.bench.search import describe

    assert parse_config(describe(options)) == options


def test_rescore_keeps_the_finalists_and_adds_the_default_sampler_with_and_without_the_tail(case):
    from diffusion_lab.schedules import cosine_schedule

    oracle, c = case
    judge = MomentJudge(oracle)
    table = checkpoint_comparison(c, judge, (6,), ours=["dpmpp_2m"], theirs=["DDIM"],
                                  finalists=1, score_samples=200, keep=1, depth=1)
    for row in table["rows"]:
        del row["options"]  # a table saved before rows kept their options: parsed from the text
    again = rescore(c, judge, table, [c.seed, 9])
    for old, new in zip(table["rows"], again["rows"], strict=True):
        assert new["fids"][0] == pytest.approx(old["fid"], rel=1e-9)  # the same draw at seed 0
        assert new["seeds"] == [c.seed, 9]
    default, full_tail = again["references"]
    assert default["reference"] == "default sampler" and default["steps"] == 6
    expected = judge.fid(c.samples(200, solver=dpmpp_2m, sigmas=LogSNRSpacing()(c.schedule, 6),
                                   seed=9))
    assert default["fids"][1] == pytest.approx(expected)
    # linear schedule: no clipped tail, the two grids are the same; cosine: they differ
    assert full_tail["fids"] == pytest.approx(default["fids"])
    cos = cosine_schedule()
    assert not torch.equal(LogSNRSpacing()(cos, 6), LogSNRSpacing(skip_tail=False)(cos, 6))


def test_rescore_lists_a_row_its_library_refuses_and_scores_the_rest(case):
    """A saved row diffusers cannot run does not stop the re-score: it is listed with the error."""
    oracle, c = case
    judge = MomentJudge(oracle)
    table = checkpoint_comparison(c, judge, (6,), ours=["dpmpp_2m"], theirs=["DDIM"],
                                  finalists=1, score_samples=50, keep=1, depth=1)
    bad = {**table["rows"][-1], "method": "DPM-Solver++ 2M", "options": {"solver_type": "bogus"},
           "config": "solver_type=bogus"}
    again = rescore(c, judge, {**table, "rows": [bad, *table["rows"]]}, [c.seed],
                    references=False)
    assert [r["method"] for r in again["rows"]] == [r["method"] for r in table["rows"]]
    (refused,) = again["refused"]
    assert refused["config"] == "solver_type=bogus" and "bogus" in refused["error"]
    assert "refused by diffusers: DPM-Solver++ 2M [solver_type=bogus" in \
        format_checkpoint_winners(again)


def test_each_scored_row_is_handed_out_so_a_crash_keeps_the_rows_before_it(case):
    """``on_row`` gets the table so far after every row (sampler_report.py saves it to --json):
    when scoring dies at the third row, the two scored before it are in the last table handed
    out, and that partial table re-scores like a whole one."""
    import copy

    oracle, c = case
    judge = MomentJudge(oracle)
    seen = []
    table = checkpoint_comparison(c, judge, (6,), ours=["dpmpp_2m", "euler"],
                                  theirs=["DDIM"], finalists=2, score_samples=50, keep=2,
                                  depth=1, on_row=lambda t: seen.append(copy.deepcopy(t)))
    assert [len(t["rows"]) for t in seen] == list(range(1, len(table["rows"]) + 1))
    assert all(t["partial"] for t in seen) and "partial" not in table
    assert seen[-1]["rows"] == table["rows"] and seen[-1]["winners"] == table["winners"]

    class DiesAtTheThirdRow(MomentJudge):
        calls = 0

        def fid(self, x):
            DiesAtTheThirdRow.calls += 1
            if DiesAtTheThirdRow.calls == 3:
                raise KeyboardInterrupt  # a kill mid-run
            return super().fid(x)

    saved = []
    with pytest.raises(KeyboardInterrupt):
        rescore(c, DiesAtTheThirdRow(oracle), table, [c.seed], on_row=saved.append)
    last = saved[-1]
    assert last["partial"] and len(last["rows"]) == 2
    assert [r["fid"] for r in last["rows"]] == pytest.approx([r["fid"] for r in table["rows"][:2]])
    again = rescore(c, judge, last, [c.seed], references=False)
    assert "partial" not in again
    assert [r["fid"] for r in again["rows"]] == pytest.approx([r["fid"] for r in last["rows"]])


def test_rescore_scores_the_fitted_grids_beside_the_finalists_and_lets_them_win(case):
    """A grid fitted for the checkpoint (``case.fitted``, from its grids file) is scored at every
    budget that pays for one (the largest such step count), at every seed, as a diffusion-lab
    configuration that can win."""
    oracle, c = case
    judge = MomentJudge(oracle)
    table = checkpoint_comparison(c, judge, (6, 8), ours=["euler (= DDIM)"], theirs=["DDIM"],
                                  finalists=1, score_samples=200, keep=1, depth=1)
    grid = LogSNRSpacing()(c.schedule, 6)  # second order on the log-SNR grid beats Euler here
    fitted = CheckpointCase(c.denoiser, c.schedule, (16,), 0, search_samples=8,
                            fitted={"dpmpp_2m": {6: grid}})
    again = rescore(fitted, judge, table, [0, 9], references=False)
    # budget 6 and budget 8 both get the 6-step grid (the largest fitted one within each)
    assert len(again["rows"]) == len(table["rows"]) + 2 and again["fitted"] == {"dpmpp_2m": [6]}
    assert [(r["budget"], r["steps"]) for r in again["rows"][-2:]] == [(6, 6), (8, 6)]
    row = again["rows"][-2]
    assert row["fitted"] and (row["method"], row["config"]) == ("dpmpp_2m", "spacing=optimized")
    assert (row["budget"], row["steps"], row["nfe"]) == (6, 6, 6)
    assert row["fids"][1] == pytest.approx(judge.fid(fitted.samples(200, solver=dpmpp_2m,
                                                                    sigmas=grid, seed=9)))
    winner = again["winners"][0]["diffusion-lab"]
    assert winner is row and row["fid"] < min(r["fid"] for r in again["rows"][:-2]
                                              if r["budget"] == 6 and r["library"] == "diffusion-lab")
    # the fitted grids alone (a table with its rows emptied): no ratio, and the table still prints
    from diffusion_lab.bench.checkpoint_case import format_checkpoint_winners

    alone = rescore(fitted, judge, {**table, "rows": []}, [0], references=False)
    assert [w["fid_ratio"] for w in alone["winners"]] == [None, None]
    assert alone["winners"][0]["diffusion-lab"]["fitted"] and "diffusers" not in alone["winners"][0]
    printed = format_checkpoint_winners(alone).splitlines()
    assert printed[1].startswith("  6  dpmpp_2m [spacing=optimized; 6 steps]")
    assert printed[1].endswith("|  (no row)  | -")


def test_ode_prior_floor_is_the_exact_flow_of_the_vp_prior():
    """Closed form: x0 = mu + s/sqrt(s^2+S^2) (x - mu), x ~ N(0, 1+S^2): mean mu (1 - s/r),
    std s sqrt(1+S^2)/r with r = sqrt(s^2+S^2); it falls as sigma_max grows, and an accurate
    ODE solve stopped just above 0 lands on it."""
    from diffusion_lab.oracle import affine_output_law, gaussian_w2, ode_prior_floor

    oracle = GaussianOracle.random(dim=16, seed=0)
    mu, s = oracle.mean, oracle.std
    for big in (50.0, 157.4):
        r = (s**2 + big**2).sqrt()
        expected = gaussian_w2(mu * (1 - s / r), s * math.sqrt(1 + big**2) / r, mu, s)
        assert ode_prior_floor(oracle, big) == pytest.approx(expected, rel=1e-9)
    assert ode_prior_floor(oracle, 157.4) < ode_prior_floor(oracle, 50.0)
    grid = torch.cat([torch.logspace(math.log10(157.4), -6, 400, dtype=torch.float64),
                      torch.zeros(1, dtype=torch.float64)])
    solved = oracle.w2(*affine_output_law(dpmpp_2m, oracle, grid, 16))
    assert solved == pytest.approx(ode_prior_floor(oracle, 157.4), rel=5e-3)


def test_the_fine_solve_is_made_only_when_a_distance_needs_it():
    """Scoring alone (``rescore``) never pays for the search's 500-step reference solve."""
    oracle = GaussianOracle.random(dim=16, seed=0)
    calls = []

    def denoiser(x, s, c=None):
        calls.append(1)
        return oracle(x.double(), s).float()

    c = CheckpointCase(denoiser, linear_schedule(), (16,), 0, search_samples=8, fine_steps=50)
    c.samples(8, solver=euler, sigmas=UniformSpacing()(c.schedule, 3))
    assert len(calls) == 3  # three Euler steps, no fine solve
    c.ours(euler, UniformSpacing()(c.schedule, 3))
    assert len(calls) == 3 + 50 + 3  # the fine solve (2M: one call per step), then the distance


def test_score_batch_sets_the_network_calls_not_the_samples():
    """``score_batch`` splits the scored samples into network calls of that many; the per-sample
    seeds make the samples the same whatever the split."""
    oracle = GaussianOracle.random(dim=16, seed=0)
    batches = []

    def denoiser(x, s, c=None):
        batches.append(len(x))
        return oracle(x.double(), s).float()

    grid = UniformSpacing()(linear_schedule(), 2)
    whole = CheckpointCase(denoiser, linear_schedule(), (16,), 0, search_samples=1)
    split = CheckpointCase(denoiser, linear_schedule(), (16,), 0, search_samples=1, score_batch=4)
    x_whole = whole.samples(10, solver=euler, sigmas=grid, seed=3)
    assert batches == [10, 10]
    batches.clear()
    x_split = split.samples(10, solver=euler, sigmas=grid, seed=3)
    assert batches == [4, 4, 4, 4, 2, 2]  # per batch: both Euler steps
    torch.testing.assert_close(x_split, x_whole)
    assert not torch.allclose(split.samples(10, solver=euler, sigmas=grid, seed=4), x_whole)


@pytest.mark.parametrize("argv, message", [
    (["--rescore", "t.json"], "--rescore needs --ckpt"),
    (["--ckpt", "c.ckpt", "--score-samples", "0"], "--score-samples >= 2"),
    (["--ckpt", "c.ckpt", "--score-seeds", "1", "1"], "must not repeat a seed"),
    (["--ckpt", "c.ckpt", "--score-batch", "0"], "--score-batch >= 1"),
    (["--ckpt", "c.ckpt", "--fitted-only"], "--fitted-only needs --rescore"),
    (["--ckpt", "c.ckpt", "--no-references"], "--no-references needs --rescore"),
    (["--ckpt", "c.ckpt", "--grids", "missing.json"], "--grids missing.json: cannot read it"),
    (["--ckpt", "c.ckpt", "--grids", "notgrids.json"], "not a grids file of scripts/optimize_grid"),
    (["--ckpt", "c.ckpt", "--grids", "a.json", "b.json"], "two files fitted for the same solver"),
])
def test_sampler_report_refuses_bad_scoring_arguments_before_any_work(argv, message, capsys,
                                                                       tmp_path, monkeypatch):
    from test_bench import load_script

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notgrids.json").write_text('{"solver": "ddim"}')
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text('{"solver": "euler", "grids": {}}')
    with pytest.raises(SystemExit) as stop:
        load_script("sampler_report").main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
