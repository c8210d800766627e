"""Bad input: each wrong config value fails before training with one readable line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_lab.tasks.validate import ConfigError, validate_train_config

ROOT = Path(__file__).resolve().parents[1]

# (overrides, the message the user must see)
BAD_CONFIGS = [
    (["sampler.steps=0"], "sampler.steps must be >= 1, got 0"),
    (["sampler.steps=-3"], "sampler.steps must be >= 1, got -3"),
    (["sampler.steps=2000"], "sampler.steps=2000 exceeds the schedule's 1000 timesteps"),
    (["sampler.steps=ten"], "sampler.steps must be an integer >= 1, got 'ten'"),
    (["trainer.max_steps=0"], "trainer.max_steps must be >= 1, got 0"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be an integer >= 1, got 'abc'"),
    (["guidance.scale=-1"], "guidance.scale must be >= 0.0, got -1"),
    (["guidance.scale=strong"], "guidance.scale must be a number, got 'strong'"),
    (["guidance.label_dropout=1.5"], "guidance.label_dropout must be <= 1.0, got 1.5"),
    (["guidance.label_dropout=-0.1"], "guidance.label_dropout must be >= 0.0, got -0.1"),
    (["data.module.batch_size=0"], "data.module.batch_size must be >= 1, got 0"),
    (["data.module.val_fraction=1.0"], "data.module.val_fraction must be < 1.0, got 1.0"),
    (["schedule.num_steps=1"], "schedule.num_steps must be >= 2, got 1"),
    (["module.optimizer.lr=0"], "module.optimizer.lr must be > 0, got 0"),
    (["module.optimizer.lr=-1e-3"], "module.optimizer.lr must be >= 0.0, got -0.001"),
    (["module.ema_decay=1.0"], "module.ema_decay must be < 1.0, got 1.0"),
    (["module.warmup_steps=-1"], "module.warmup_steps must be >= 0, got -1"),
    (["sampler=ddim", "sampler.solver.eta=2"], "sampler.solver.eta must be <= 1.0, got 2"),
    (["eval.samples_per_class=0"], "eval.samples_per_class must be >= 1, got 0"),
    (
        ["schedule.zero_terminal_snr=true"],
        "schedule.zero_terminal_snr=true cannot be used with eps prediction",
    ),
    (
        ["backbone.channel_mult=[1,2,2,2,2]"],
        "image size 8 is not divisible by 16, the downsampling factor of a U-Net",
    ),
    (
        ["backbone.attention_resolutions=[16]"],
        "backbone.attention_resolutions has 16, but this U-Net's feature maps are [8, 4]",
    ),
    (
        ["experiment=digits_dit", "backbone.patch_size=3"],
        "image size 8 is not divisible by the DiT patch size 3",
    ),
    (
        ["data=toy2d", "backbone=mlp", "data.num_classes=0", "guidance.scale=3"],
        "guidance.scale=3 needs a class-conditional dataset",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_config_is_refused_with_message(make_cfg, overrides, message):
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_default_config_is_valid(make_cfg):
    validate_train_config(make_cfg())


def test_good_zero_snr_config_is_valid(make_cfg):
    validate_train_config(make_cfg("schedule.zero_terminal_snr=true", "objective=v"))


def run_train(tmp_path, *overrides):
    env = {**os.environ, "WANDB_MODE": "offline", "DIFFUSION_LAB_DATA": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"paths.output_root={tmp_path}",
         "logger=none", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


# End to end through scripts/train.py: exit status and the one line the user reads.
CLI_CASES = [
    (["sampler.steps=0"], 2, "error: sampler.steps must be >= 1, got 0"),
    (["experiment=mnist"], 2, "error: MNIST: missing train-images-idx3-ubyte.gz"),
    (["ckpt_path=/nonexistent/last.ckpt"], 2, "error: checkpoint not found: /nonexistent/last.ckpt"),
    (["schedule=foo"], 1, "Could not find 'schedule/foo'"),
    (["trainer.max_stepz=3"], 1, "Could not override 'trainer.max_stepz'"),
]


@pytest.mark.parametrize(("overrides", "code", "message"), CLI_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_refuses_before_training(tmp_path, overrides, code, message):
    res = run_train(tmp_path, *overrides)
    assert res.returncode == code, res.stderr[-2000:]
    assert message in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    # Nothing was trained: no checkpoint anywhere under the output root.
    assert not list(tmp_path.rglob("*.ckpt"))
