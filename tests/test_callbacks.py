"""Dashboard callbacks: x_t strips, loss by timestep, guidance sweep, mode coverage, memorisation.

Unit tests pin each callback's numbers on known inputs; one tiny training run (CSV logger,
every callback firing) checks what lands in the run directory. The data classifier is
replaced by a 2-epoch, narrow one (same code path, own cache key) to keep the file fast.
"""

from __future__ import annotations

import json
import logging
import math
import types
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from PIL import Image
from test_train import FAST, SMALL_UNET

import diffusion_lab.metrics.classifier as classifier_mod
from diffusion_lab.callbacks import (
    GuidanceSweep,
    LossByTimestep,
    Memorization,
    ModeCoverage,
    TimestepLossAccumulator,
    XtStrip,
)
from diffusion_lab.metrics import load_or_train_classifier
from diffusion_lab.metrics.class_scores import coverage_stats
from diffusion_lab.noise import initial_noise
from diffusion_lab.tasks.build import build_datamodule, build_module
from diffusion_lab.tasks.train import train
from diffusion_lab.utils.images import to_uint8
from diffusion_lab.utils.plots import header_height
from diffusion_lab.visualization.xt_strips import nearest_steps

STEPS, BATCH, SPC, MODE_N, STRIP_N = 4, 32, 2, 20, 10
# Every dashboard callback fires: strips at steps 2 and 4, loss-by-t scalars every step and
# charts at 2 and 4, the sweep (2 samples per class, the eval's seeds) and the histogram at 4.
DASHBOARD = [
    *(o for o in FAST if not o.startswith("logger=")),
    *SMALL_UNET,
    f"trainer.max_steps={STEPS}",
    f"data.module.batch_size={BATCH}",
    "callbacks.xt_strip.every_n_steps=2",
    f"callbacks.xt_strip.num_samples={STRIP_N}",
    "callbacks.loss_by_t.every_n_steps=1",
    "callbacks.loss_by_t.plot_every_n_steps=2",
    f"callbacks.guidance_sweep.samples_per_class={SPC}",
    "callbacks.guidance_sweep.min_step=0",
    f"callbacks.mode_coverage.num_samples={MODE_N}",
    "callbacks.mode_coverage.min_step=0",
    f"callbacks.memorization.num_samples={MODE_N}",
    "callbacks.memorization.min_step=0",
]
QUICK_CLASSIFIER = {"epochs": 2, "width": 16, "feature_dim": 32}


def quick_classifier(monkeypatch) -> None:
    """The evaluation's and the callbacks' data classifier, trained for 2 epochs only."""
    monkeypatch.setattr(classifier_mod, "load_or_train_classifier",
                        partial(load_or_train_classifier, **QUICK_CLASSIFIER))


def tiny_run(run_dir: Path, cache_dir: Path, *overrides: str) -> dict:
    """Train the tiny digits U-Net with every dashboard callback firing; returns metrics."""
    with pytest.MonkeyPatch.context() as mp:
        quick_classifier(mp)
        cfg = compose_config("train", [*DASHBOARD, f"paths.cache_dir={cache_dir}", *overrides],
                             run_dir)
        return train(cfg)


def media_json(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / "media" / name).read_text())


# ----------------------------------------------------------------------------- unit tests


def test_accumulator_per_bin_means_and_counts_match_a_direct_computation():
    T, bins = 1000, 10
    gen = torch.Generator().manual_seed(0)
    acc = TimestepLossAccumulator(T, bins)
    all_t, all_loss = [], []
    for _ in range(5):
        t = torch.randint(0, T, (64,), generator=gen)
        t[:2] = torch.tensor([0, T - 1])  # both ends of the range
        loss = torch.rand(64, generator=gen)
        acc.add(loss, t)
        all_t.append(t)
        all_loss.append(loss)
    t, loss = torch.cat(all_t), torch.cat(all_loss)
    means, counts = acc.means()
    for k, (lo, hi) in enumerate(acc.bin_edges()):
        mask = (t >= lo) & (t <= hi)
        assert counts[k] == mask.sum()
        assert means[k].item() == pytest.approx(loss[mask].double().mean().item(), rel=1e-6)
    assert counts.sum() == 5 * 64
    assert acc.bin_edges()[0] == (0, 99) and acc.bin_edges()[-1] == (900, 999)

    # Uneven T: edges still tile [0, T) exactly; an empty bin reads NaN; reset empties.
    acc = TimestepLossAccumulator(7, 3)
    assert acc.bin_edges() == [(0, 2), (3, 4), (5, 6)]
    acc.add(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 2, 6]))
    means, counts = acc.means()
    assert counts.tolist() == [2, 0, 1]
    assert means[0] == 2.0 and math.isnan(means[1]) and means[2] == 5.0
    acc.reset()
    assert acc.means()[1].sum() == 0


def test_loss_by_timestep_counts_each_batch_outputs_once_and_logs_only_at_its_steps(tmp_path):
    cb = LossByTimestep(num_bins=4, every_n_steps=2, plot_every_n_steps=4)
    module = types.SimpleNamespace(schedule=types.SimpleNamespace(num_steps=8))
    trainer = types.SimpleNamespace(global_step=0, strategy=types.SimpleNamespace(
        reduce=lambda x, reduce_op: x), is_global_zero=True, global_rank=0, loggers=[],
        default_root_dir=str(tmp_path))
    cb.on_train_start(trainer, module)
    for step in range(1, 5):
        outputs = {"loss": torch.tensor(float(step)),
                   "per_sample_loss": torch.full((2,), float(step)), "t": torch.tensor([0, 7])}
        trainer.global_step = step
        cb.on_train_batch_end(trainer, module, outputs, None, step)
        cb.on_train_batch_end(trainer, module, None, None, step)  # no outputs: nothing counted
    lines = [json.loads(s) for s in (tmp_path / "media" / "scalars.jsonl").read_text().split("\n")
             if s]
    assert [d["step"] for d in lines] == [2, 4]
    assert lines[0]["loss_by_t/bin_00"] == 1.5 and math.isnan(lines[0]["loss_by_t/bin_01"])
    assert lines[1]["loss_by_t/bin_03"] == 3.5
    (chart,) = cb.charts
    assert chart["counts"] == [4, 0, 0, 4] and chart["first_step"] == 1 and chart["step"] == 4


def test_nearest_steps_pick_the_grid_levels_closest_to_each_t(make_cfg):
    cfg = make_cfg(*SMALL_UNET, "sampler.steps=20", "sampler/spacing=uniform")
    module = build_module(cfg)
    sigmas = module.sampler.sigmas(module.schedule)  # trailing: t = 999, 949, ..., 49
    assert nearest_steps(module.schedule, sigmas, [999, 749.25, 499.5, 249.75, 0]) == [
        0, 5, 10, 15, None]


def test_xt_strip_columns_follow_the_trajectory_and_the_forward_process(make_cfg):
    cfg = make_cfg(*SMALL_UNET, "sampler.steps=20")
    module = build_module(cfg)  # untrained weights are enough: the plumbing is under test
    n = 4
    x0 = torch.rand(n, 1, 8, 8) * 2 - 1
    cb = XtStrip(seed=3)
    s = cb.strips(module, x0)
    # The run's own grid (log-SNR, 20 steps): the levels nearest 999, 749.25, 499.5, 249.75, 0.
    sigmas = module.sampler.sigmas(module.schedule)
    assert s["steps"] == nearest_steps(module.schedule, sigmas, [999, 749.25, 499.5, 249.75, 0])
    grid_t = module.schedule.sigma_to_t(sigmas[:-1])
    assert s["t"] == [round(float(grid_t[i])) for i in s["steps"][:-1]] + [0]
    assert s["t"][0] == 999 and s["t"] == sorted(s["t"], reverse=True)
    assert all(len(s[k]) == 5 for k in ("reverse_xt", "reverse_x0_hat", "forward"))
    # t = T: the sampler's starting noise, in the VP scale, is the seed's initial noise.
    torch.testing.assert_close(s["reverse_xt"][0], initial_noise((n, 1, 8, 8), seed=3),
                               atol=1e-5, rtol=1e-5)
    # t = 0: the sample the run's sampler gives from the same seeds without a recorder.
    labels = torch.arange(n) % module.num_classes
    torch.testing.assert_close(s["reverse_xt"][-1], module.sample(labels=labels, seed=3))
    torch.testing.assert_close(s["reverse_x0_hat"][-1], s["reverse_xt"][-1])
    # Forward columns: x_t = sqrt(ab) x0 + sqrt(1 - ab) noise with ONE noise draw per image.
    torch.testing.assert_close(s["forward"][-1], x0)
    noises = []
    for t, xt in zip(s["t"][:-1], s["forward"][:-1]):
        ab = float(module.schedule.alpha_bars[t])
        noises.append((xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab))
    for other in noises[1:]:
        torch.testing.assert_close(other, noises[0], atol=1e-4, rtol=1e-4)


def test_coverage_stats_on_known_histograms():
    uniform = torch.full((10,), 0.1, dtype=torch.float64)
    s = coverage_stats(torch.full((10,), 7), uniform)
    assert s == {"entropy": pytest.approx(1.0), "classes_covered": 1.0, "min_max_ratio": 1.0,
                 "num_samples": 70}
    s = coverage_stats(torch.tensor([70] + [0] * 9), uniform)
    assert s["entropy"] == 0.0 and s["classes_covered"] == pytest.approx(0.1)
    assert s["min_max_ratio"] == 0.0
    # 4 of 8 expected counts (1 < 0.25 * 8 = 2) is below min_fraction: not covered.
    s = coverage_stats(torch.tensor([8, 8, 8, 8, 8, 8, 8, 8, 8, 1]), uniform)
    assert s["classes_covered"] == pytest.approx(0.9)


def test_sample_based_callbacks_skip_with_a_reason(caplog, tmp_path):
    dm = types.SimpleNamespace(num_classes=0, shape=(1, 8, 8))
    trainer = types.SimpleNamespace(is_global_zero=True, global_step=500, datamodule=dm)
    uncond = types.SimpleNamespace(num_classes=0)
    with caplog.at_level(logging.INFO):
        sweep = GuidanceSweep(cache_dir=str(tmp_path))
        sweep.make(trainer, uncond)
        cover = ModeCoverage(cache_dir=str(tmp_path))
        cover.make(trainer, uncond)
        early = GuidanceSweep(min_step=1000)
        early.make(trainer, types.SimpleNamespace(num_classes=10))
    assert sweep.last is None and cover.last is None and early.last is None
    assert "guidance sweep skipped: the model is unconditional" in caplog.text
    assert "mode coverage skipped: the data has no labels" in caplog.text
    assert "min_step=1000" in caplog.text


def test_memorization_callback_warns_on_copies_and_not_on_new_images(monkeypatch, tmp_path,
                                                                     shared_cache, caplog):
    import diffusion_lab.callbacks.unconditional_samples as uncond_mod

    quick_classifier(monkeypatch)
    cfg = compose_config("train", [*DASHBOARD, f"paths.cache_dir={shared_cache}"], tmp_path / "r")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    train_x = dm.train_set.x
    g = torch.Generator().manual_seed(0)
    a, b = torch.randperm(len(train_x), generator=g)[:40].chunk(2)
    drawn = {"copies": train_x[:20].clone(),  # the model regurgitates training images
             "new": (train_x[a] + train_x[b]) / 2}  # halfway between two: d1/d2 about 1
    trainer = types.SimpleNamespace(is_global_zero=True, global_rank=0, global_step=300,
                                    datamodule=dm, default_root_dir=str(tmp_path), loggers=[])
    results = {}
    for kind, x in drawn.items():
        module = types.SimpleNamespace(num_classes=0)  # two models: no shared draw between them
        monkeypatch.setattr(uncond_mod, "generate_samples", lambda *a, x=x, **k: x)
        cb = Memorization(num_samples=len(x), cache_dir=str(shared_cache),
                          dataset_name=cfg.data.name)
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            cb.make(trainer, module)
        results[kind] = (cb.last, caplog.text)
    copies, warned = results["copies"]
    assert copies["stats"]["copy_share_pixel"] == 1.0 and copies["warned"]
    assert copies["stats"]["median_nn_ratio_pixel"] == 0.0
    assert "are near-copies of training images" in warned
    assert (tmp_path / "media" / "memorization_warning_step0000300.json").is_file()
    new, quiet = results["new"]
    assert new["stats"]["copy_share_pixel"] == 0.0 and not new["warned"] and quiet == ""
    assert new["stats"]["median_nn_ratio_pixel"] > 0.9
    pairs = np.asarray(Image.open(new["paths"]["pairs"]))
    assert pairs.shape[1] == 2 * (8 * 4 + 1) + 1  # two columns: sample | nearest training image
    scalars = [json.loads(s) for s in (tmp_path / "media" / "scalars.jsonl").read_text().splitlines()
               if "memorization/copy_share_pixel" in s]
    assert [d["memorization/copy_share_pixel"] for d in scalars] == [1.0, 0.0]


def test_panels_at_the_same_step_share_one_unconditional_draw(monkeypatch, tmp_path,
                                                               shared_cache):
    import diffusion_lab.callbacks.unconditional_samples as uncond_mod

    calls = []

    def fake_generate(module, labels, n, *, seed, **kw):
        calls.append((n, seed))
        return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))

    monkeypatch.setattr(uncond_mod, "generate_samples", fake_generate)
    cfg = compose_config("train", [*DASHBOARD, f"paths.cache_dir={shared_cache}"], tmp_path / "r")
    dm = build_datamodule(cfg)
    trainer = types.SimpleNamespace(is_global_zero=True, global_rank=0, global_step=300,
                                    datamodule=dm)
    module = types.SimpleNamespace(num_classes=0)
    kw = {"cache_dir": str(shared_cache), "dataset_name": cfg.data.name}
    first = ModeCoverage(num_samples=30, **kw).draw(trainer, module)
    again = Memorization(num_samples=20, **kw).draw(trainer, module)
    assert calls == [(30, 0)] and torch.equal(again, first[:20])  # no second sampling run
    Memorization(num_samples=40, **kw).draw(trainer, module)  # more than drawn: draws anew
    Memorization(num_samples=40, seed=1, **kw).draw(trainer, module)  # other seed: anew
    trainer.global_step = 400  # new weights: anew
    Memorization(num_samples=40, seed=1, **kw).draw(trainer, module)
    assert calls == [(30, 0), (40, 0), (40, 1), (40, 1)]


# ----------------------------------------------------------------------------- one tiny run


@pytest.fixture(scope="module")
def dashboard_run(tmp_path_factory, shared_cache):
    run_dir = tmp_path_factory.mktemp("dashboard") / "run"
    metrics = tiny_run(run_dir, shared_cache, "logger=csv", "eval.enabled=true",
                       f"eval.samples_per_class={SPC}")
    cfg = compose_config("train", [*DASHBOARD, f"paths.cache_dir={shared_cache}"], run_dir)
    return run_dir, metrics, cfg


def test_xt_strip_pngs_have_five_labelled_columns_of_samples(dashboard_run):
    run_dir, _, cfg = dashboard_run
    cell = 8 * 4  # 8x8 digits upscaled 4x, 1 px padding
    for name in ("reverse_xt", "reverse_x0_hat", "forward"):
        pngs = sorted((run_dir / "media" / f"xt_strip_{name}").glob("*.png"))
        assert [p.name for p in pngs] == ["step0000002.png", "step0000004.png"]
        img = np.asarray(Image.open(pngs[-1]))
        assert img.shape[:2] == (header_height(["t"]) + STRIP_N * (cell + 1) + 1,
                                 5 * (cell + 1) + 1)
    cols = media_json(run_dir, "xt_strip_columns_step0000004.json")
    t = [row[1] for row in cols["rows"]]
    assert len(t) == 5 and t[0] == 999 and t[-1] == 0 and t == sorted(t, reverse=True)
    # The forward strip's t = 0 column is the fixed real validation batch itself.
    dm = build_datamodule(cfg)
    real = to_uint8(dm.real_batch(STRIP_N, split="val", seed=cfg.callbacks.xt_strip.seed))
    img = np.asarray(Image.open(run_dir / "media" / "xt_strip_forward" / "step0000004.png"))
    top, left = header_height(["t"]) + 1, 1 + 4 * (cell + 1)
    for r in range(STRIP_N):
        tile = img[top + r * (cell + 1): top + r * (cell + 1) + cell, left: left + cell, 0]
        np.testing.assert_array_equal(tile[::4, ::4], real[r, :, :, 0])


def test_loss_by_t_counts_every_training_sample_once(dashboard_run):
    run_dir, _, _ = dashboard_run
    tables = sorted((run_dir / "media").glob("loss_by_t_table_step*.json"))
    assert [p.name for p in tables] == ["loss_by_t_table_step0000002.json",
                                        "loss_by_t_table_step0000004.json"]
    counts = [row[4] for p in tables for row in json.loads(p.read_text())["rows"]]
    assert sum(counts) == STEPS * BATCH
    chart = media_json(run_dir, "loss_by_t_chart/step0000004.json")
    assert len(chart["labels"]) == len(chart["values"]) == 10
    assert (run_dir / "media" / "loss_by_t_chart" / "step0000004.png").is_file()
    scalars = [json.loads(s) for s in (run_dir / "media" / "scalars.jsonl").read_text().split("\n")
               if s and "loss_by_t/bin_00" in s]
    assert [d["step"] for d in scalars] == [1, 2, 3, 4]


def test_guidance_sweep_rows_match_the_evaluation_at_w1(dashboard_run):
    run_dir, metrics, cfg = dashboard_run
    assert cfg.callbacks.guidance_sweep.seed == cfg.eval.seed  # the shared-seed contract
    table = media_json(run_dir, "guidance_sweep_table_step0000004.json")
    assert table["columns"] == ["w", "fid", "accuracy", "num_samples", "sampler", "nfe"]
    assert [row[0] for row in table["rows"]] == [1, 2, 3, 5, 7]
    n = 10 * SPC
    for w, fid, acc, count, sampler, nfe in table["rows"]:
        assert math.isfinite(fid) and fid >= 0 and 0 <= acc <= 1
        assert count == n and sampler == "dpmpp_2m" and nfe == 3
    w1 = table["rows"][0]
    assert metrics["sample_count"] == n
    assert w1[2] == metrics["sample_accuracy_w1"]
    assert w1[1] == pytest.approx(metrics["fid_classifier_w1"], rel=1e-9)
    for chart in ("fid_vs_w", "accuracy_vs_w"):
        data = media_json(run_dir, f"guidance_sweep_{chart}/step0000004.json")
        assert data["x"] == [1, 2, 3, 5, 7]
        assert f"{n} samples per w" in data["title"] and "NFE 3" in data["title"]
        assert (run_dir / "media" / f"guidance_sweep_{chart}" / "step0000004.png").is_file()
    img = np.asarray(Image.open(run_dir / "media" / "guidance_sweep_samples" / "step0000004.png"))
    assert img.shape[1] == 5 * 33 + 1  # one column per w


def test_mode_coverage_histogram_counts_every_sample(dashboard_run):
    run_dir, _, _ = dashboard_run
    hist = media_json(run_dir, "mode_coverage_histogram/step0000004.json")
    assert hist["labels"] == [str(c) for c in range(10)]
    assert sum(hist["values"]) == MODE_N
    assert f"{MODE_N} unconditional samples" in hist["title"]
    table = media_json(run_dir, "mode_coverage_table_step0000004.json")
    assert sum(row[1] for row in table["rows"]) == MODE_N
    assert sum(row[3] for row in table["rows"]) == pytest.approx(1.0)
    assert (run_dir / "media" / "mode_coverage_histogram" / "step0000004.png").is_file()


def test_csv_logger_gets_the_dashboard_scalars(dashboard_run):
    run_dir, _, _ = dashboard_run
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("loss_by_t/bin_00", "loss_by_t/bin_09", "guidance_sweep/fid_w1",
                "guidance_sweep/accuracy_w7", "mode_coverage/entropy",
                "mode_coverage/classes_covered", "mode_coverage/clusters_covered",
                "memorization/copy_share_pixel", "memorization/copy_share_feature"):
        assert key in header
    assert (run_dir / "media" / "memorization_pairs" / "step0000004.png").is_file()


def test_schedule_view_curves_and_sampler_levels(dashboard_run):
    """log SNR and alpha_bar of the run's cosine schedule against t, beside the presets, and
    the levels of its sampler (3 steps, log-SNR grid with the cosine-tail skip)."""
    import math

    from diffusion_lab.schedules import cosine_schedule, linear_schedule
    from diffusion_lab.tasks.build import build_module

    run_dir, _, cfg = dashboard_run
    snr = media_json(run_dir, "schedule_log_snr/step0000000.json")
    bars = media_json(run_dir, "schedule_alpha_bar/step0000000.json")
    # the run's schedule is the cosine preset: named so and drawn once
    assert set(snr["series"]) == {"this run (cosine)", "linear", "sigmoid"}
    assert snr["x"] == list(range(1000))
    snr["series"]["cosine"], bars["series"]["cosine"] = (
        d["series"]["this run (cosine)"] for d in (snr, bars))
    # cosine: ab(t) = f(t/T)/f(0), f(u) = cos^2((u + s)/(1 + s) pi/2), betas clipped at 0.999
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (0, 250, 500, 750):
        ab = f((t + 1) / 1000) / f(0)
        assert bars["series"]["cosine"][t] == pytest.approx(ab, rel=1e-9)
        assert snr["series"]["cosine"][t] == pytest.approx(math.log(ab / (1 - ab)), rel=1e-9)
    lin = linear_schedule()
    assert bars["series"]["linear"] == pytest.approx(lin.alpha_bars.double().tolist(), rel=1e-12)
    assert all(a > b for a, b in zip(bars["series"]["cosine"], bars["series"]["cosine"][1:]))
    assert (run_dir / "media" / "schedule_log_snr" / "step0000000.png").is_file()
    # the sampler's levels: the run's own grid, with t and log SNR of each level
    levels = media_json(run_dir, "schedule_sampler_levels_step0000000.json")
    assert levels["columns"] == ["level", "sigma", "t", "log_snr"]
    module = build_module(cfg)
    sigmas = module.sampler.sigmas(cosine_schedule())
    sigmas = sigmas[sigmas > 0]
    assert [r[1] for r in levels["rows"]] == pytest.approx(sigmas.tolist(), rel=1e-12)
    assert len(levels["rows"]) == 3
    for _, sigma, t, log_snr in levels["rows"]:
        assert log_snr == pytest.approx(-2 * math.log(sigma))
        assert 0 <= t <= 999
