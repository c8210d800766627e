"""The noisy-classifier stage and classifier guidance from the command line: training, resume,
the held-out accuracy by noise level, safe loading, and sample.py steering an unconditional
model with it (and the refusals when the classifier does not fit the model)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, refusal_line
from test_validation import write_checkpoint

from diffusion_lab.noisy_classifier.load import load_noisy_classifier
from diffusion_lab.noisy_classifier.train import train_noisy_classifier
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ["noisy_classifier.model.base_channels=16", "trainer.enable_progress_bar=false",
        "trainer.val_check_interval=50", "trainer.deterministic=true", "logger=csv"]


def _stage(root: Path, run: str, *overrides):
    return compose_config("train_noisy_classifier", [*TINY, *overrides], root / "out" / run)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained for 150 steps on the digits (cosine schedule, as scripts/train.py)."""
    root = tmp_path_factory.mktemp("noisy_classifier")
    os.environ.setdefault("DIFFUSION_LAB_CACHE", str(root / "cache"))
    return train_noisy_classifier(_stage(root, "full", "trainer.max_steps=150",
                                         "callbacks.checkpoint.every_n_train_steps=75"))


def test_the_stage_learns_a_classifier_that_loses_accuracy_with_noise(trained):
    report = trained["heldout_accuracy_by_t"]
    assert report["t"][0] == 0 and report["t"][-1] == 999 and report["count"] == 180
    acc = report["accuracy"]
    assert acc[0] > 0.6  # chance is 0.1
    assert acc[-1] < 0.3 and acc[-1] < acc[0] - 0.3  # pure noise says nothing of the class
    assert report["sigma"] == sorted(report["sigma"])
    run = Path(trained["checkpoint"]).parents[1]
    assert (run / "accuracy_vs_noise.png").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["heldout_accuracy_by_t"] == report and saved["global_step"] == 150


def test_the_checkpoint_alone_rebuilds_the_classifier(trained):
    loaded = load_noisy_classifier(trained["checkpoint"])
    assert loaded.facts == {"class": "EncoderClassifier", "num_classes": 10,
                            "image_shape": [1, 8, 8]}
    ckpt = load_checkpoint_file(trained["checkpoint"])
    state = {k.removeprefix("classifier."): v for k, v in ckpt["state_dict"].items()}
    for key, value in loaded.classifier.net.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    # at sigma ~ 0 it classifies the real digits
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:300], dtype=torch.float32)[:, None] / 8 - 1
    logits = loaded.classifier(x, torch.full((300,), 0.01))
    assert (logits.argmax(1).numpy() == digits.target[:300]).mean() > 0.6


def test_a_tampered_or_foreign_checkpoint_is_refused(trained, tmp_path):
    ckpt = load_checkpoint_file(trained["checkpoint"])
    ckpt["diffusion_lab_config"]["noisy_classifier"]["model"]["_target_"] = "os.system"
    torch.save(ckpt, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="not one of diffusion-lab's own classes"):
        load_noisy_classifier(tmp_path / "evil.ckpt")
    torch.save({"state_dict": {}, "diffusion_lab_config": {"data": {}}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="is not a noisy-classifier checkpoint"):
        load_noisy_classifier(tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="noisy classifier not found"):
        load_noisy_classifier(tmp_path / "missing.ckpt")


def test_the_stage_resumes_to_the_weights_of_the_uninterrupted_run(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "cache"))
    midway = Path(trained["checkpoint"]).parent / "step0000075.ckpt"
    resumed = train_noisy_classifier(_stage(tmp_path, "resumed", "trainer.max_steps=150",
                                            f"ckpt_path={midway}"))
    assert resumed["global_step"] == 150
    a, b = (load_checkpoint_file(m["checkpoint"]) for m in (trained, resumed))
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0, msg=key)


def _sample(make_cfg, tmp_path, ckpt, name, *overrides):
    from diffusion_lab.tasks.sample import sample

    run_dir = tmp_path / name
    run_dir.mkdir()
    return sample(make_cfg(f"ckpt={ckpt}", "sampler.steps=3", *overrides, config_name="sample",
                           run_dir=run_dir)), run_dir


def test_sample_py_steers_an_unconditional_model_to_every_class(trained, make_cfg, tmp_path,
                                                                shared_cache):
    model = write_checkpoint(make_cfg, tmp_path / "uncond.ckpt", "backbone.num_classes=0")
    guided = ["guidance=classifier", f"guidance.classifier_ckpt={trained['checkpoint']}",
              "samples_per_class=2", f"paths.cache_dir={shared_cache}"]
    info, run = _sample(make_cfg, tmp_path, model, "s5", *guided, "guidance.classifier_scale=5")
    saved = np.load(run / "samples.npz")
    assert saved["labels"].tolist() == [k for k in range(10) for _ in range(2)]
    assert info["num_samples"] == 20 and "sample_accuracy" in info  # scored against its labels
    assert info["guidance_classifier_ckpt"] == trained["checkpoint"]
    assert info["guidance_classifier_scale"] == 5
    # scale 0: exactly the unguided samples of the same indices; scale 5 moves them
    _, run0 = _sample(make_cfg, tmp_path, model, "s0", *guided, "guidance.classifier_scale=0",
                         "metrics=false")
    _, runp = _sample(make_cfg, tmp_path, model, "plain", "num_samples=20", "metrics=false")
    x0, xp, x5 = (np.load(r / "samples.npz")["x"] for r in (run0, runp, run))
    np.testing.assert_array_equal(x0, xp)
    assert np.abs(x5 - xp).max() > 1e-3
    # a class-conditional model: guided on top of CFG, same labels as its plain samples
    cond = write_checkpoint(make_cfg, tmp_path / "cond.ckpt")
    _, cfg_run = _sample(make_cfg, tmp_path, cond, "cfg", "samples_per_class=2", "metrics=false",
                         "guidance.scale=2")
    _, both_run = _sample(make_cfg, tmp_path, cond, "both", *guided, "metrics=false",
                          "guidance.scale=2", "guidance.classifier_scale=3")
    a, b = (np.load(r / "samples.npz") for r in (cfg_run, both_run))
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert np.abs(a["x"] - b["x"]).max() > 1e-3


def _edited_classifier(trained, tmp_path, **facts) -> Path:
    ckpt = load_checkpoint_file(trained["checkpoint"])
    ckpt["diffusion_lab_noisy_classifier"].update(facts)
    path = tmp_path / ("edited_" + "_".join(sorted(facts)) + ".ckpt")
    torch.save(ckpt, path)
    return path


def test_a_classifier_that_does_not_fit_the_model_is_refused(trained, make_cfg, tmp_path):
    uncond = write_checkpoint(make_cfg, tmp_path / "uncond.ckpt", "backbone.num_classes=0")
    cond = write_checkpoint(make_cfg, tmp_path / "cond.ckpt")
    linear = write_checkpoint(make_cfg, tmp_path / "linear.ckpt", "backbone.num_classes=0",
                              "schedule=linear")
    cases = [
        (linear, trained["checkpoint"], "trained on another noise schedule"),
        (uncond, _edited_classifier(trained, tmp_path, image_shape=[1, 28, 28]),
         r"classifies \[1, 28, 28\] images, the model samples \[1, 8, 8\]"),
        (cond, _edited_classifier(trained, tmp_path, num_classes=5), "knows 5 classes"),
    ]
    for i, (model, classifier, message) in enumerate(cases):
        with pytest.raises(ConfigError, match=message):
            _sample(make_cfg, tmp_path, model, f"r{i}", "guidance=classifier",
                    f"guidance.classifier_ckpt={classifier}", "metrics=false")
    with pytest.raises(ConfigError, match="guidance=classifier needs guidance.classifier_ckpt="):
        _sample(make_cfg, tmp_path, uncond, "unset", "guidance=classifier")
    with pytest.raises(ConfigError, match="classifier_scale must be a finite number"):
        _sample(make_cfg, tmp_path, uncond, "neg", "guidance=classifier",
                f"guidance.classifier_ckpt={trained['checkpoint']}", "guidance.classifier_scale=-1")
    from diffusion_lab.tasks.evaluate import evaluate_checkpoint

    run_dir = tmp_path / "eval"
    run_dir.mkdir()
    with pytest.raises(ConfigError, match="score classifier-guided samples with scripts/sample.py"):
        evaluate_checkpoint(make_cfg(f"ckpt={uncond}", "guidance=classifier",
                                     f"guidance.classifier_ckpt={trained['checkpoint']}",
                                     config_name="evaluate", run_dir=run_dir))


def test_bad_classifier_input_from_the_command_line_is_one_line_and_exit_2(tmp_path, make_cfg):
    model = write_checkpoint(make_cfg, tmp_path / "uncond.ckpt", "backbone.num_classes=0")
    runs = {
        "sample.py": ([f"ckpt={model}", "guidance=classifier",
                       f"guidance.classifier_ckpt={tmp_path / 'nope.ckpt'}"],
                      f"error: noisy classifier not found: {tmp_path / 'nope.ckpt'}"),
        "train_noisy_classifier.py": (["data=toy2d"],
                                      "error: data=two_moons: the noisy classifier classifies images"),
    }
    for script, (args, first) in runs.items():
        last = refusal_line(script, f"paths.output_root={tmp_path}", *args, cwd=ROOT)
        assert last.startswith(first), last
