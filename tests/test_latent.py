"""Latent diffusion: the measured scale (closed form), posterior sampling, the scale check,
and one tiny latent run (the autoencoder stage first, then a latent DiT) through every dashboard
callback, the end-of-run evaluation, sample.py and evaluate.py, with the refusals of another
autoencoder or scale."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from PIL import Image
from test_callbacks import DASHBOARD, SPC, quick_classifier
from test_train import SMALL_UNET

from diffusion_lab.autoencoder.kl_autoencoder import KLAutoencoder
from diffusion_lab.autoencoder.load import load_autoencoder, weights_identity
from diffusion_lab.data.datamodule import DiffusionDataModule
from diffusion_lab.data.digits import digits
from diffusion_lab.latent.datamodule import LatentArrayDataset, LatentDataModule
from diffusion_lab.latent.scale import check_scaled_std, measure_scale, scaled_std
from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.evaluate import evaluate_checkpoint
from diffusion_lab.tasks.io import CheckpointError, atomic_torch_save, load_checkpoint_file
from diffusion_lab.tasks.sample import sample
from diffusion_lab.tasks.train import train

ROOT = Path(__file__).resolve().parents[1]
LATENT = [
    *(o for o in DASHBOARD if o not in SMALL_UNET), "logger=csv", "data=digits",
    "backbone=dit_tiny", "backbone.hidden_size=32", "backbone.depth=2", "backbone.num_heads=2",
    "autoencoder=kl_f4", "autoencoder.model.channels=[8,8]", "autoencoder.model.pad_to=null",
    "autoencoder.max_steps=2", "eval.enabled=true", f"eval.samples_per_class={SPC}",
]


# ----------------------------------------------------------------------------- the scale


def test_measured_scale_is_the_inverse_std_of_the_posterior_mixture():
    gen = torch.Generator().manual_seed(0)
    mu, a, b = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([2.0, 0.3, 5.0]), torch.tensor([0.5, 0.1, 1.0])
    mean = mu.view(1, 3, 1, 1) + a.view(1, 3, 1, 1) * torch.randn(20000, 3, 2, 2, generator=gen)
    logvar = (b.view(1, 3, 1, 1) ** 2).log().expand_as(mean)
    shift, scale = measure_scale(mean, logvar)
    # Var[z] = Var[m] + E[s^2] per channel
    torch.testing.assert_close(scale, (a**2 + b**2).rsqrt(), rtol=0.02, atol=0)
    torch.testing.assert_close(shift, mu, rtol=0, atol=0.05)
    assert scaled_std(mean, logvar, shift, scale) == pytest.approx(1.0, abs=0.01)
    # one scale for all channels: the pooled variance (about the pooled mean)
    _shift1, scale1 = measure_scale(mean, logvar, per_channel=False)
    pooled = (a**2).mean() + (mu**2).mean() - mu.mean() ** 2 + (b**2).mean()
    assert scale1.shape == (1,) and float(scale1) == pytest.approx(float(pooled.rsqrt()), rel=0.02)
    # a constant from elsewhere (as SD's 0.18215 for another autoencoder) leaves the std far from 1
    wrong = scaled_std(mean, logvar, torch.zeros(1), torch.tensor([0.05]))
    assert wrong < 0.5 and "far from 1" in check_scaled_std(wrong)
    assert check_scaled_std(1.0) is None


def test_training_batches_sample_the_posterior_and_validation_uses_its_mean():
    x, std = torch.zeros(4000, 2, 2, 2), torch.full((4000, 2, 2, 2), 2.0)
    data = LatentArrayDataset(x, std, torch.zeros(4000, dtype=torch.long), num_classes=0,
                              class_names=None, name="z")
    torch.manual_seed(0)
    batch, _ = data.__getitems__(list(range(4000)))
    assert float(batch.std()) == pytest.approx(2.0, rel=0.03)
    part = data.subset(torch.arange(10))
    assert torch.equal(part.std, std[:10]) and part.sample_posterior
    part.sample_posterior = False
    assert torch.equal(part.__getitems__([0, 1])[0], x[:2])


def test_a_given_scale_far_from_the_measured_one_is_warned_at_the_start(tmp_path, caplog):
    torch.manual_seed(0)
    ae = KLAutoencoder(channels=(8, 8), image_size=8).eval()
    pixels = DiffusionDataModule(digits, batch_size=64)
    with caplog.at_level(logging.WARNING):
        dm = LatentDataModule(pixels, (ae, weights_identity(ae)), "in-memory", cache_dir=tmp_path,
                              scale=100.0)
        dm.setup("fit")
    assert dm.scaled_std > 2 and "far from 1" in caplog.text
    assert torch.equal(dm.codec.scale, torch.tensor([100.0]))


BAD_AUTOENCODERS = {
    "missing file": (["autoencoder=kl_f4", "autoencoder.path={tmp}/none.ckpt"], "does not exist"),
    "no path": (["autoencoder=pretrained"], "autoencoder=pretrained needs autoencoder.path="),
    "not a diffusers folder": (["autoencoder=pretrained", "autoencoder.path={tmp}"],
                               "is a folder without config.json"),
    "not an autoencoder": (["autoencoder=kl_f4", "autoencoder.path={tmp}/diffusion.ckpt"],
                           "is not an autoencoder checkpoint"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUTOENCODERS))
def test_a_bad_autoencoder_is_one_line_before_any_work(make_cfg, tmp_path, case):
    overrides, message = BAD_AUTOENCODERS[case]
    atomic_torch_save({"state_dict": {}, "diffusion_lab_config": {}}, tmp_path / "diffusion.ckpt")
    cfg = make_cfg(*(o.format(tmp=tmp_path) for o in overrides))
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()  # nothing was started


# ----------------------------------------------------------------------------- one tiny run


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory, shared_cache):
    out = tmp_path_factory.mktemp("latent")
    with pytest.MonkeyPatch.context() as mp:
        quick_classifier(mp)
        cfg = compose_config("train", [*LATENT, f"paths.cache_dir={shared_cache}"], out / "run")
        metrics = train(cfg)
    return out / "run", metrics, cfg, shared_cache


def test_the_stage_runs_first_and_the_checkpoint_names_its_weights_and_measured_scale(latent_run):
    run_dir, metrics, cfg, cache = latent_run
    ckpt = load_checkpoint_file(metrics["checkpoint"])
    facts = ckpt["diffusion_lab_latent"]
    stage_ckpt = Path(cfg.autoencoder.path)
    assert stage_ckpt.parts[-4] == f"{cfg.name}_autoencoder" and stage_ckpt.is_file()
    _ae, identity = load_autoencoder(stage_ckpt)
    assert facts["identity"] == identity == ckpt["diffusion_lab_config"]["autoencoder"]["identity"]
    # the stored scale is the one measured on the cached training latents
    stored = load_checkpoint_file(next((cache / "latents").glob(f"digits-{identity}-*.pt")))
    pixels = DiffusionDataModule(digits, batch_size=64, val_fraction=0.1, seed=0)
    pixels.setup()
    shift, scale = measure_scale(stored["mean"][pixels.train_indices], stored["logvar"][pixels.train_indices])
    torch.testing.assert_close(facts["scale"], scale)
    torch.testing.assert_close(facts["shift"], shift)
    # the clamp of predicted latents: the largest |z'| of the scaled training means
    scaled = (stored["mean"][pixels.train_indices] - shift.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
    assert facts["bound"] == pytest.approx(float(scaled.abs().max()))
    module = module_from_checkpoint(ckpt)
    x0_hat = module.denoiser()(torch.randn(8, 4, 4, 4) * 50, torch.full((8,), 80.0),
                               torch.zeros(8, dtype=torch.long))
    assert float(x0_hat.abs().max()) <= facts["bound"] + 1e-6
    assert facts["latent_shape"] == [4, 4, 4]
    assert ckpt["diffusion_lab_config"]["backbone"]["in_channels"] == 4
    # logged at the start of training: the scaled latents' std, 1 by construction
    first = json.loads((run_dir / "media" / "scalars.jsonl").read_text().splitlines()[0])
    assert first["latent/scaled_std"] == pytest.approx(1.0, abs=1e-3)


def test_every_callback_and_the_evaluation_see_decoded_images(latent_run):
    run_dir, metrics, _, _ = latent_run
    cell = 8 * 4  # decoded 8x8 digits, upscaled 4x
    grid = np.asarray(Image.open(run_dir / "media" / "samples_grid" / "step0000004.png"))
    assert grid.shape[0] == 10 * (cell + 1) + 1  # one row per class of decoded images
    for name in ("reverse_xt", "reverse_x0_hat", "forward"):
        decoded = np.asarray(Image.open(run_dir / "media" / f"xt_strip_decoded_{name}" / "step0000004.png"))
        latent = np.asarray(Image.open(run_dir / "media" / f"xt_strip_{name}" / "step0000004.png"))
        assert decoded.shape[1] == 5 * (cell + 1) + 1  # five columns of 8x8 images
        assert latent.shape[1] == 5 * (8 * 4 + 1) + 1  # 2x2 mosaics of 4x4 latent channels
    assert list((run_dir / "media" / "xt_strip_animation").glob("*.gif"))
    assert list((run_dir / "media" / "guidance_sweep_samples").glob("*.png"))
    assert list((run_dir / "media").glob("mode_coverage*"))
    assert metrics["sample_count"] == 10 * SPC and 0 <= metrics["sample_accuracy"] <= 1
    assert math.isfinite(metrics["fid_classifier"])


def _sample_cfg(run_dir, metrics, cache, *extra, config="sample"):
    (run_dir.parent / config).mkdir(exist_ok=True)
    return compose_config(config, [f"ckpt={metrics['checkpoint']}", "sampler.steps=3",
                                   f"paths.cache_dir={cache}", *extra], run_dir.parent / config)


def test_sample_and_evaluate_decode_with_the_stored_autoencoder(latent_run):
    run_dir, metrics, _, cache = latent_run
    with pytest.MonkeyPatch.context() as mp:
        quick_classifier(mp)
        info = sample(_sample_cfg(run_dir, metrics, cache, "samples_per_class=2"))
        result = evaluate_checkpoint(_sample_cfg(run_dir, metrics, cache, "samples_per_class=2",
                                                 config="evaluate"))
    x = np.load(info["samples"])["x"]
    assert x.shape == (20, 1, 8, 8) and x.min() >= -1 and x.max() <= 1  # images, not latents
    assert 0 <= info["sample_accuracy"] <= 1 and 0 <= result["sample_accuracy"] <= 1
    # the samples are the decoded latents of the same seeds
    module = module_from_checkpoint(load_checkpoint_file(metrics["checkpoint"]))
    z = module.sample(labels=[0, 1], sampler=module.sampler, seed=0, decode=False)
    assert z.shape == (2, 4, 4, 4)
    torch.testing.assert_close(module.decode(z), module.codec.decode(z))


def test_real_image_editing_encodes_and_decodes_with_the_stored_autoencoder(latent_run):
    """interpolate.py and img2img.py work in the latent space and show decoded images;
    inpaint.py, whose mask is in pixels, refuses a latent model in one line."""
    from diffusion_lab.tasks.img2img import img2img
    from diffusion_lab.tasks.inpaint import inpaint
    from diffusion_lab.tasks.interpolate import interpolate

    run_dir, metrics, _, cache = latent_run
    common = ("classify=false", "sampler.steps=6")
    info = interpolate(_sample_cfg(run_dir, metrics, cache, "pairs=2", "frames=3", *common,
                                   config="interpolate"))
    grid = np.asarray(Image.open(info["grid"]))
    assert grid.shape[1] == 5 * (8 * 4 + 1) + 1  # real | 3 decoded 8x8 frames | real
    assert len(info["reconstruction_rmse_per_image"]) == 4
    edited = img2img(_sample_cfg(run_dir, metrics, cache, "images=2", "samples_per_image=1",
                                 "strength=0.5", *common, config="img2img"))
    assert edited["steps_run"] == 3 and 0 < edited["rms_to_source"] < 2
    with pytest.raises(ConfigError, match="inpaint.py edits pixel-space models; this checkpoint "
                                          "is a latent model"):
        inpaint(_sample_cfg(run_dir, metrics, cache, *common, config="inpaint"))


def test_another_autoencoder_or_scale_is_refused(latent_run, tmp_path):
    _run_dir, metrics, cfg, _cache = latent_run
    ckpt = load_checkpoint_file(metrics["checkpoint"])
    stage = load_checkpoint_file(cfg.autoencoder.path)
    stage["state_dict"] = {k: v + 0.01 for k, v in stage["state_dict"].items()}
    atomic_torch_save(stage, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="trained on the latents of autoencoder"):
        module_from_checkpoint(ckpt, autoencoder=str(tmp_path / "other.ckpt"))
    with pytest.raises(ConfigError, match="refused"):
        module_from_checkpoint(ckpt, latent_scale=0.18215)
    # the same weights elsewhere are accepted
    atomic_torch_save(load_checkpoint_file(cfg.autoencoder.path), tmp_path / "copy.ckpt")
    assert module_from_checkpoint(ckpt, autoencoder=str(tmp_path / "copy.ckpt")).codec is not None
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample.py"), f"ckpt={metrics['checkpoint']}",
         f"paths.output_root={tmp_path}", f"autoencoder_path={tmp_path / 'other.ckpt'}"],
        cwd=ROOT, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True,
        timeout=300, check=False)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "holds autoencoder" in last
