"""Progress bars on the long loops outside the trainer: sampling and feature extraction."""

from __future__ import annotations

import torch
from conftest import compose_config

from diffusion_lab.lit.generate import generate
from diffusion_lab.metrics.fid import extract_features
from diffusion_lab.tasks.build import build_module


def test_sampling_bar_counts_every_sampler_step_of_every_batch(tmp_path, capsys):
    cfg = compose_config("train", ["backbone.base_channels=16", "backbone.groups=8",
                                   "backbone.num_heads=2", "sampler.steps=3"], tmp_path / "run")
    module = build_module(cfg)
    x = generate(module, module.sampler, labels=torch.arange(10), num_samples=10, seed=0,
                 batch_size=4, guidance_scale=1.0, use_ema=True, progress="sampling")
    err = capsys.readouterr().err
    assert x.shape == (10, 1, 8, 8)
    assert "sampling" in err and "9/9" in err  # 3 batches x 3 steps
    generate(module, module.sampler, labels=torch.arange(2), num_samples=2, seed=0,
             batch_size=4, guidance_scale=1.0, use_ema=True)  # no description: no bar
    assert capsys.readouterr().err == ""


def test_feature_bar_counts_images_and_can_be_switched_off(capsys, monkeypatch):
    net = torch.nn.Flatten()
    feats = extract_features(net, torch.zeros(70, 1, 2, 2), batch_size=32, progress="features")
    assert feats.shape == (70, 4)
    assert "70/70" in capsys.readouterr().err
    monkeypatch.setenv("DIFFUSION_LAB_PROGRESS", "0")
    extract_features(net, torch.zeros(70, 1, 2, 2), batch_size=32, progress="features")
    assert capsys.readouterr().err == ""
