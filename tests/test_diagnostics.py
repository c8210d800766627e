"""Each diagnostic fires on a constructed failing case and stays quiet on a healthy one:
a backbone that ignores t, exact copies of training images, a schedule mismatch, samples
that miss modes; plus the two ablation options (zeroed t-embedding, duplicated data)."""

from __future__ import annotations

import json

import pytest
import torch
from test_validation import write_checkpoint

from diffusion_lab.backbones import UNet
from diffusion_lab.data.digits import digits
from diffusion_lab.data.duplicates import with_duplicates
from diffusion_lab.diagnostics import (
    cluster_coverage,
    memorization_report,
    schedule_mismatch,
    schedule_record,
    timestep_sensitivity,
)
from diffusion_lab.diagnostics.memorization import pair_images
from diffusion_lab.diagnostics.time_embedding import embedding_layers, timestep_grid
from diffusion_lab.schedules import cosine_schedule, linear_schedule
from diffusion_lab.tasks.errors import ConfigError


def tiny_unet(zero_t: bool) -> UNet:
    torch.manual_seed(0)
    net = UNet(image_size=8, in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
               attention_resolutions=(4,), num_heads=2, groups=4, num_classes=3,
               zero_time_embedding=zero_t)
    with torch.no_grad():  # a "trained" network: no zero-initialised layer left
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


def test_time_embedding_dead_when_zeroed_and_healthy_otherwise():
    x, cond, ts = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), timestep_grid(1000, 6)
    dead = timestep_sensitivity(tiny_unet(True), x, ts, cond)
    healthy = timestep_sensitivity(tiny_unet(False), x, ts, cond)
    assert dead["status"] == "dead" and dead["output"] == 0.0
    assert healthy["status"] == "healthy" and healthy["output"] > 0.05
    layers = embedding_layers(tiny_unet(False))
    assert set(dead["layers"]) == set(healthy["layers"]) == set(layers) and len(layers) >= 5
    assert all(v == 0.0 for v in dead["layers"].values())
    assert all(v > 1e-3 for v in healthy["layers"].values())


@pytest.mark.parametrize("zero", [True, False])
def test_every_backbone_can_zero_its_time_embedding(zero):
    from diffusion_lab.backbones import MLP, DiT

    torch.manual_seed(0)
    nets = [DiT(image_size=8, patch_size=4, in_channels=1, hidden_size=16, depth=1, num_heads=2,
                num_classes=0, zero_time_embedding=zero),
            MLP(dim=2, hidden=16, depth=2, zero_time_embedding=zero)]
    for net, x in zip(nets, (torch.randn(3, 1, 8, 8), torch.randn(3, 2))):
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.2)
        result = timestep_sensitivity(net, x, timestep_grid(1000, 4))
        assert result["status"] == ("dead" if zero else "healthy"), type(net).__name__
        assert result["layers"]  # DiT blocks (adaLN) and MLP blocks (emb_proj) are measured


def test_time_embedding_of_an_untrained_zero_initialised_net_is_silent_not_dead():
    net = UNet(image_size=8, in_channels=1, base_channels=8, channel_mult=(1,), num_res_blocks=1,
               attention_resolutions=(), groups=4)
    result = timestep_sensitivity(net.train(), torch.randn(2, 1, 8, 8), timestep_grid(1000, 3))
    assert result["status"] == "silent"
    assert net.training  # mode restored


def test_memorization_flags_copies_and_not_held_out_images():
    data = digits()
    train, held_out = data.x[:1200], data.x[1200:1400]
    copies = train[torch.arange(0, 200, 10)] + 0.01 * torch.randn(20, 1, 8, 8)
    flagged = memorization_report(copies, train)
    assert flagged["copy_share"] == 1.0 and flagged["median_ratio"] < 0.05
    assert torch.equal(flagged["nearest"], torch.arange(0, 200, 10))
    real = memorization_report(held_out, train)
    assert real["copy_share"] <= 0.05 and real["median_ratio"] > 0.5
    pairs = pair_images(copies, train, flagged["nearest"], count=3)
    assert torch.equal(pairs[1], train[0]) and torch.equal(pairs[0], copies[0])


def test_memorization_sees_copies_of_a_duplicated_training_image():
    data = with_duplicates(digits(), count=2, times=50)
    assert len(data) == 1797 + 100
    repeated = data.x[1797:]
    assert torch.equal(repeated[0], repeated[2]) and not torch.equal(repeated[0], repeated[1])
    report = memorization_report(repeated[:2].clone(), data.x)
    assert report["copy_share"] == 1.0 and float(report["d1"].max()) == 0.0
    assert float(report["d2"].min()) > 0  # the second neighbour is another image, not a duplicate
    with pytest.raises(ValueError, match="duplicate count must be in"):
        with_duplicates(digits(), count=5000)


def test_schedule_record_detects_a_different_schedule():
    cosine, linear = cosine_schedule(1000), linear_schedule(1000)
    record = schedule_record(cosine)
    assert schedule_mismatch(record, cosine_schedule(1000)) is None
    assert "differ" in schedule_mismatch(record, linear)
    assert schedule_mismatch(record, cosine_schedule(500)) == (
        "trained with T=1000 timesteps, sampling with T=500")


def _with_record(schedule):
    def edit(ckpt):
        ckpt["diffusion_lab_schedule"] = schedule_record(schedule)
    return edit


def test_sampling_refuses_a_schedule_other_than_the_trained_one(make_cfg, tmp_path):
    from diffusion_lab.tasks.sample import sample
    from diffusion_lab.tasks.visualize import visualize

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt", "schedule=cosine",
                            edit=_with_record(cosine_schedule(1000)))
    run_dir = tmp_path / "sample"
    run_dir.mkdir()
    cfg = make_cfg(f"ckpt={path}", "metrics=false", "+schedule=linear", config_name="sample",
                   run_dir=run_dir)
    with pytest.raises(ConfigError, match="schedule: .* was trained with another noise schedule"):
        sample(cfg)
    vis = make_cfg(f"ckpt={path}", "+schedule=linear", config_name="visualize", run_dir=run_dir)
    with pytest.raises(ConfigError, match="schedule: .* was trained with another noise schedule"):
        visualize(vis)  # the x_t strips and animation go through the same check
    # the stored config no longer builds the recorded values (a changed default, say)
    stale = write_checkpoint(make_cfg, tmp_path / "stale.ckpt", "schedule=cosine",
                             edit=_with_record(linear_schedule(1000)))
    cfg = make_cfg(f"ckpt={stale}", "metrics=false", config_name="sample", run_dir=run_dir)
    with pytest.raises(ConfigError, match="is not the one it was trained with"):
        sample(cfg)
    assert list(run_dir.iterdir()) == []
    # the same schedule passes
    cfg = make_cfg(f"ckpt={path}", "metrics=false", "samples_per_class=1", "sampler.steps=2",
                   config_name="sample", run_dir=run_dir)
    assert sample(cfg)["num_samples"] == 10


def test_feature_clusters_count_missing_modes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(100)
    real = centres[labels] + torch.randn(300, 2, generator=g)
    everywhere = centres.repeat(20, 1) + torch.randn(60, 2, generator=g)
    one_mode = centres[1] + torch.randn(60, 2, generator=g)
    full = cluster_coverage(real, labels, everywhere, k=3)
    assert full["clusters_covered"] == 1.0 and full["purity"] == 1.0
    assert full["classes_in_clusters"] == 1.0
    collapsed = cluster_coverage(real, labels, one_mode, k=3)
    assert collapsed["clusters_covered"] == pytest.approx(1 / 3)


def test_elbow_of_a_bent_curve_and_none_on_a_line():
    from diffusion_lab.diagnostics.elbow import elbow

    ws = [1.0, 3.0, 5.0, 7.0, 10.0]
    flat_then_steep = [10.0, 10.5, 11.0, 20.0, 35.0]  # bends upward after w = 5
    assert ws[elbow(ws, flat_then_steep)[0]] == 5.0
    falls_then_rises = [30.0, 12.0, 14.0, 18.0, 25.0]  # best at w = 3
    assert ws[elbow(ws, falls_then_rises)[0]] == 3.0
    assert elbow(ws, [2 * w for w in ws])[1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="xs must increase"):
        elbow([1.0, 1.0, 2.0], [0.0, 1.0, 2.0])


def test_recipe_docs_copy_the_newest_report_and_list_the_rest(tmp_path):
    from diffusion_lab.presets import CONF_DIR
    from diffusion_lab.reports.recipe_docs import write_docs

    for stamp, value in (("2026-01-01_00-00-00", "old"), ("2026-02-01_00-00-00", "new")):
        run = tmp_path / "outputs" / "recipe_guidance" / stamp
        run.mkdir(parents=True)
        (run / "fid.png").write_bytes(b"png")
        (run / "report.md").write_text(f"# Recipe 4\n\n- output folder: `{run}`\n\n{value} ![f](fid.png)\n")
        (run / "report.json").write_text(json.dumps({"images": ["fid.png"], "seconds": 90.0,
                                                     "machine": "m"}))
    other = tmp_path / "outputs" / "recipe_schedules" / "2026-01-01_00-00-00"
    other.mkdir(parents=True)
    (other / "report.md").write_text("# Recipe 2\n")
    (other / "report.json").write_text(json.dumps({"images": [], "seconds": 150.0, "machine": "m"}))
    pages = write_docs(CONF_DIR, tmp_path / "outputs", tmp_path / "docs")
    page = pages["recipe_guidance"].read_text()
    assert "new ![f](recipe_guidance/fid.png)" in page and "generated from run `2026-02-01" in page
    assert (tmp_path / "docs" / "recipe_guidance" / "fid.png").read_bytes() == b"png"
    assert pages["recipe_tiny_ddpm"] is None
    index = (tmp_path / "docs" / "README.md").read_text()
    assert "[Recipe 4](recipe_guidance.md)" in index
    assert "run `python scripts/recipe.py experiment=recipe_tiny_ddpm`" in index
    # the newest report of each recipe only: 90 s + 150 s
    assert "These 2 reports took 4.0 min of wall time together" in index and "machine: m)" in index


def test_a_duplicated_data_checkpoint_opens():
    """The duplicated-data option is one of the project's own targets (checkpoints store it)."""
    from diffusion_lab.tasks.trusted_targets import is_trusted_target

    assert is_trusted_target("diffusion_lab.data.duplicates.with_duplicates")


def test_evaluate_reports_memorisation_and_cluster_coverage(make_cfg, tmp_path, monkeypatch,
                                                            shared_cache):
    from diffusion_lab.tasks.evaluate import evaluate_checkpoint

    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(shared_cache))
    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    run_dir = tmp_path / "eval"
    run_dir.mkdir()
    cfg = make_cfg(f"ckpt={path}", "samples_per_class=1", "sampler.steps=2",
                   "inspect.num_samples=12", "inspect.clusters=4", f"paths.cache_dir={shared_cache}",
                   config_name="evaluate", run_dir=run_dir)
    result = evaluate_checkpoint(cfg)
    assert result["memorization_samples"] == 12 and result["clusters_k"] == 4
    assert 0.0 <= result["copy_share_pixel"] <= 1.0 and 0.0 < result["clusters_covered"] <= 1.0
    assert (run_dir / "memorization_pairs.png").is_file()
    assert result["time_embedding_status"] == "silent"  # untrained: zero-initialised output layer
    # per-class accuracy and the confusion matrix, consistent with the overall accuracy
    confusion = json.loads((run_dir / "eval_confusion_w1.json").read_text())
    counts = torch.tensor(confusion["counts"])
    assert counts.shape == (10, 10) and counts.sum(1).tolist() == [1] * 10
    assert counts.trace().item() / 10 == pytest.approx(result["sample_accuracy"])
    assert result["worst_class_accuracy"] == min(confusion["per_class_accuracy"])
    assert confusion["per_class_accuracy"][result["worst_class"]] == result["worst_class_accuracy"]
    assert (run_dir / "eval_confusion_w1.png").is_file()
    assert result["fid_classifier_bootstrap_sd"] > 0  # 10 samples: a noisy FID, and it says so
    with pytest.raises(ConfigError, match="inspect.clusters must be >= 1, got 0"):
        evaluate_checkpoint(make_cfg(f"ckpt={path}", "inspect.clusters=0", config_name="evaluate",
                                     run_dir=run_dir))


@pytest.mark.parametrize("cls, kwargs, message", [
    ("ModeCoverage", {"num_samples": 1}, "mode coverage: num_samples must be >= 2"),
    ("ModeCoverage", {"batch_size": 0}, "mode coverage: num_samples must be >= 2 and batch_size"),
    ("Memorization", {"num_samples": 0}, "memorization check: num_samples must be >= 1"),
    ("Memorization", {"pairs": 0}, "memorization check: pairs must be >= 1, got 0"),
])
def test_unconditional_panels_refuse_bad_sizes_naming_the_panel(cls, kwargs, message):
    from diffusion_lab.callbacks import memorization, mode_coverage

    panel = {"ModeCoverage": mode_coverage.ModeCoverage,
             "Memorization": memorization.Memorization}[cls]
    with pytest.raises(ValueError, match=message):
        panel(**kwargs)
    panel()  # the defaults are valid
