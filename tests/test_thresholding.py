"""Imagen's dynamic thresholding: the closed form per sample, its place in the module's denoiser
(instead of the static clip), the config option and its refusals."""

from __future__ import annotations

import types

import pytest
import torch
from omegaconf import OmegaConf
from test_validation import write_checkpoint

from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.guidance_setup import configure_guidance, guidance_options
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.validate import ConfigError
from diffusion_lab.thresholding import dynamic_threshold_x0


def test_dynamic_threshold_closed_form():
    ramp = torch.arange(101, dtype=torch.float64)  # |x| = 0 ... 100: quantile 0.9 is exactly 90
    x = torch.stack([ramp * torch.where(ramp % 2 == 0, 1.0, -1.0), 0.5 * torch.ones(101)])
    out = dynamic_threshold_x0(x.view(2, 1, 101), 0.9).view(2, 101)
    expected = x[0].clamp(-90, 90) / 90  # clipped at its own 90th percentile, scaled into range
    assert torch.allclose(out[0], expected)
    assert torch.equal(out[1], x[1])  # within [-1, 1]: s = max(1, 0.5) = 1, unchanged
    # p = 1: no clipping at all, only the scale back into [-1, 1]
    assert torch.allclose(dynamic_threshold_x0(x[:1].view(1, 1, 101), 1.0).view(101), x[0] / 100)
    # below the floor it is the static clip
    small = torch.tensor([[[0.2, -3.0, 0.1, 0.3]]])
    assert torch.equal(dynamic_threshold_x0(small, 0.5), small.clamp(-1, 1))


def test_the_module_thresholds_instead_of_clipping(make_cfg, tmp_path):
    module = module_from_checkpoint(load_checkpoint_file(
        write_checkpoint(make_cfg, tmp_path / "m.ckpt")))
    with torch.no_grad():  # an untrained net's x0 overshoots wildly at large sigma
        for p in module.ema.model.parameters():
            p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(0)
    x, sigma, cond = 80 * torch.randn(4, 1, 8, 8, generator=g), torch.full((4,), 80.0), torch.arange(4)
    module.clip_denoised = False
    raw = module.denoiser(guidance_scale=3.0)(x, sigma, cond)
    assert raw.abs().max() > 1
    module.clip_denoised = True
    clipped = module.denoiser(guidance_scale=3.0)(x, sigma, cond)
    module.dynamic_threshold = 0.995
    thresholded = module.denoiser(guidance_scale=3.0)(x, sigma, cond)
    assert torch.allclose(thresholded, dynamic_threshold_x0(raw, 0.995))
    assert thresholded.abs().max() <= 1 + 1e-6
    # fewer pixels pinned at the range's ends than the static clip leaves
    assert (thresholded.abs() > 0.999).sum() < (clipped.abs() > 0.999).sum()


def test_the_config_option_sets_it_and_refuses_what_it_cannot_do():
    image_model = types.SimpleNamespace(guidance_rule=None, codec=None, sample_shape=(1, 8, 8))
    configure_guidance(image_model, OmegaConf.create({"scale": 3.0, "dynamic_threshold": 0.995}))
    assert image_model.dynamic_threshold == 0.995 and image_model.guidance_rule is None
    configure_guidance(image_model, OmegaConf.create({"scale": 3.0, "dynamic_threshold": None}))
    assert image_model.dynamic_threshold is None
    for bad in (0, 1.5, "high", True):
        with pytest.raises(ConfigError, match="guidance.dynamic_threshold must be a percentile"):
            configure_guidance(image_model, OmegaConf.create({"dynamic_threshold": bad}))
    points = types.SimpleNamespace(guidance_rule=None, codec=None, sample_shape=(2,))
    with pytest.raises(ConfigError, match="samples are not images"):
        configure_guidance(points, OmegaConf.create({"dynamic_threshold": 0.995}))
    assert guidance_options(OmegaConf.create({"dynamic_threshold": 0.995})) == {
        "guidance_dynamic_threshold": 0.995}
