"""Evaluation of unconditional models: FID, the classifier's Inception Score and the class
histogram, checked against closed forms and against real images of all classes or of one."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import compose_config
from test_validation import write_checkpoint

from diffusion_lab.evaluation import SampleJudge
from diffusion_lab.metrics.class_scores import classifier_score
from diffusion_lab.tasks.build import build_datamodule


def test_classifier_score_closed_forms():
    k = 4
    one_hot = torch.eye(k).repeat(5, 1)  # confident and every class equally often
    assert classifier_score(one_hot) == pytest.approx(k)
    same = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(6, 1)  # every sample alike
    assert classifier_score(same) == pytest.approx(1.0)
    # two samples: p1 = (1, 0), p2 = (1/2, 1/2); marginal (3/4, 1/4)
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert classifier_score(probs) == pytest.approx(math.exp((kl1 + kl2) / 2))
    # confident but one class only: no variety, score 1
    assert classifier_score(torch.eye(k)[[2] * 7]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probs must be"):
        classifier_score(torch.ones(3))


def test_real_images_of_every_class_score_high_and_one_class_scores_as_a_dropped_mode(
        tmp_path, shared_cache):
    cfg = compose_config("train", [f"paths.cache_dir={shared_cache}"], tmp_path / "r")
    dm = build_datamodule(cfg)
    judge = SampleJudge.for_data(dm, shared_cache, cfg.data.name)
    everything = judge.unconditional(dm.val_set.x)
    reference = judge.reference()
    assert everything["classes_covered"] == 1.0 and everything["class_entropy"] > 0.98
    assert everything["classifier_score"] == pytest.approx(reference["classifier_score_val"])
    assert everything["classifier_score"] > 8  # of 10: the classifier is confident on real digits
    assert everything["fid_classifier"] == pytest.approx(reference["fid_classifier_val_vs_train"])
    assert sum(everything["class_counts"]) == everything["sample_count"] == len(dm.val_set)
    threes = dm.train_set.x[dm.train_set.y == 3][:150]
    collapsed = judge.unconditional(threes)
    assert collapsed["classes_covered"] == pytest.approx(0.1)
    assert collapsed["class_counts"][3] >= 145 and collapsed["class_entropy"] < 0.1
    assert collapsed["classifier_score"] < 1.2
    assert collapsed["fid_classifier"] > 10 * everything["fid_classifier"]
    # KID: unbiased, ~0 for held-out real images, far above for one class
    assert abs(everything["kid_classifier"]) < 0.05 * collapsed["kid_classifier"]
    assert everything["kid_subset_size"] == len(dm.val_set)  # capped at the smaller side
    fractions = torch.tensor(collapsed["data_class_fractions"], dtype=torch.double)
    expected = torch.bincount(dm.train_set.y, minlength=10).double()
    assert torch.allclose(fractions, expected / expected.sum())


def test_evaluate_scores_an_unconditional_checkpoint(make_cfg, tmp_path, monkeypatch, shared_cache):
    from diffusion_lab.tasks.evaluate import evaluate_checkpoint

    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(shared_cache))
    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt", "backbone.num_classes=0")
    run_dir = tmp_path / "eval"
    run_dir.mkdir()
    cfg = make_cfg(f"ckpt={path}", "samples_per_class=3", "sampler.steps=2",
                   f"paths.cache_dir={shared_cache}", config_name="evaluate", run_dir=run_dir)
    result = evaluate_checkpoint(cfg)
    assert result["sample_count"] == 30 and sum(result["class_counts"]) == 30
    assert "sample_accuracy" not in result  # no class asked for, none to be right about
    assert result["fid_classifier"] > 0 and result["fid_classifier_bootstrap_sd"] > 0
    assert 1.0 <= result["classifier_score"] <= 10.0
    assert 0.0 <= result["classes_covered"] <= 1.0
    saved = json.loads((run_dir / "eval_class_histogram.json").read_text())
    assert saved["counts"] == result["class_counts"] and len(saved["data_fractions"]) == 10
    assert (run_dir / "eval_class_histogram.png").is_file()
    assert (run_dir / "eval_samples_uncond.png").is_file()
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["classifier_score"] == result["classifier_score"]
    # sample.py scores them the same way (same judge, its own sample count)
    from diffusion_lab.tasks.sample import sample

    sample_dir = tmp_path / "sample"
    sample_dir.mkdir()
    info = sample(make_cfg(f"ckpt={path}", "num_samples=12", "sampler.steps=2",
                           f"paths.cache_dir={shared_cache}", config_name="sample",
                           run_dir=sample_dir))
    assert info["sample_count"] == 12 and sum(info["class_counts"]) == 12
    assert info["fid_classifier"] > 0 and 1.0 <= info["classifier_score"] <= 10.0
    one = sample(make_cfg(f"ckpt={path}", "num_samples=1", "sampler.steps=2", config_name="sample",
                          run_dir=sample_dir))
    assert "fid_classifier" not in one and one["metrics_skipped"].startswith("FID and KID need")
