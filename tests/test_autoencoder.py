"""The autoencoder stage: shapes, padding, the KL term's closed form, diffusers' AutoencoderKL
from a local folder, the stage's resume and its bad-input exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_config

from diffusion_lab.autoencoder.kl_autoencoder import (
    KLAutoencoder,
    crop_center,
    kl_to_standard_normal,
    pad_center,
)
from diffusion_lab.autoencoder.load import load_autoencoder, weights_identity
from diffusion_lab.autoencoder.train import train_autoencoder
from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file
from diffusion_lab.tasks.trusted_targets import is_trusted_target

ROOT = Path(__file__).resolve().parents[1]
TINY_AE = ["autoencoder.model.channels=[8,8]", "trainer.enable_progress_bar=false",
           "trainer.val_check_interval=2", "trainer.deterministic=true", "logger=csv",
           "data=digits", "autoencoder.model.pad_to=null", "callbacks.reconstructions.every_n_steps=2"]


def test_encode_decode_shapes_and_padding_for_28x28_digits():
    ae = KLAutoencoder(in_channels=1, latent_channels=4, channels=(8, 8, 8), image_size=28, pad_to=32)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (3, 4, 8, 8) == (3, *ae.latent_shape())
    assert ae.decode(mean).shape == x.shape
    # padding with the background value is undone exactly by the crop
    padded = pad_center(x, 32)
    assert padded.shape[-1] == 32 and torch.all(padded[..., :2, :] == -1)
    torch.testing.assert_close(crop_center(padded, 28), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="built for 28x28"):
        ae.encode(torch.zeros(1, 1, 8, 8))


def test_kl_term_matches_the_closed_form():
    mean, logvar = torch.zeros(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)
    torch.testing.assert_close(kl_to_standard_normal(mean, logvar), torch.zeros(2))
    # KL(N(1, e^{-1}) || N(0, 1)) = 1/2 (1 + e^{-1} - 1 + 1) per dimension
    kl = kl_to_standard_normal(mean + 1, logvar - 1)
    torch.testing.assert_close(kl, torch.full((2,), 36 * 0.5 * (1 + torch.e ** -1)))


def test_pretrained_autoencoderkl_round_trips_from_a_local_folder(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=4, sample_size=16)
    vae.save_pretrained(tmp_path / "vae")
    ae, identity = load_autoencoder(tmp_path / "vae", image_size=14, image_channels=1, pad_to=16)
    assert ae.latent_shape() == (4, 8, 8)  # 14 -> padded 16 -> factor 2
    x = torch.rand(2, 1, 14, 14) * 2 - 1
    mean, logvar = ae.encode(x)
    rgb = pad_center(x, 16).expand(-1, 3, -1, -1)
    with torch.no_grad():
        posterior = vae.encode(rgb).latent_dist
        expected = crop_center(vae.decode(mean).sample, 14).mean(1, keepdim=True)
    torch.testing.assert_close(mean, posterior.mean)
    torch.testing.assert_close(logvar, posterior.logvar)
    torch.testing.assert_close(ae.decode(mean), expected)
    # the identity is the weights': the same folder twice agrees, other weights do not
    assert load_autoencoder(tmp_path / "vae", image_size=14, image_channels=1)[1] == identity
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(1.0)
    vae.save_pretrained(tmp_path / "other")
    assert load_autoencoder(tmp_path / "other", image_size=14, image_channels=1)[1] != identity
    with pytest.raises(CheckpointError, match="not a diffusers AutoencoderKL folder"):
        load_autoencoder(tmp_path)


def test_autoencoder_targets_are_allow_listed():
    assert is_trusted_target("diffusion_lab.autoencoder.kl_autoencoder.KLAutoencoder")
    assert is_trusted_target("diffusion_lab.autoencoder.pretrained.PretrainedAutoencoderKL")
    assert not is_trusted_target("diffusion_lab.autoencoder.load.load_autoencoder")


def _stage(tmp_path, run: str, *overrides):
    return compose_config("train_autoencoder", [*TINY_AE, *overrides], tmp_path / "out" / run)


def test_the_stage_resumes_to_the_weights_of_the_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "cache"))
    full = train_autoencoder(_stage(tmp_path, "full", "trainer.max_steps=4",
                                    "callbacks.checkpoint.every_n_train_steps=2"))
    # resumed from the periodic checkpoint the full run wrote at step 2
    midway = Path(full["checkpoint"]).parent / "step0000002.ckpt"
    resumed = train_autoencoder(_stage(tmp_path, "resumed", "trainer.max_steps=4",
                                       f"ckpt_path={midway}"))
    assert resumed["global_step"] == full["global_step"] == 4
    a, b = (load_checkpoint_file(m["checkpoint"]) for m in (full, resumed))
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0, msg=key)
    # the dashboard and the held-out report of the stage
    run = Path(full["checkpoint"]).parents[1]
    assert sorted(p.name for p in (run / "media" / "autoencoder_reconstructions").glob("*.png")) == [
        "step0000002.png", "step0000004.png"]
    assert (run / "reconstructions.png").is_file()
    assert full["heldout_count"] > 0 and full["heldout_recon_mse"] > 0
    assert full["latent_shape"] == [4, 4, 4] and full["compression_factor"] == 1.0
    # the checkpoint alone rebuilds the autoencoder, with the weights it trained
    ae, identity = load_autoencoder(full["checkpoint"])
    assert identity == weights_identity(ae)
    state = {k.removeprefix("autoencoder."): v for k, v in a["state_dict"].items()}
    for key, value in ae.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_bad_stage_input_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_autoencoder.py"),
         f"paths.output_root={tmp_path}", "logger=csv", "autoencoder.kl_weight=-1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == "error: autoencoder: kl_weight must be >= 0, got -1"


def test_the_stage_config_keeps_its_own_step_budget(tmp_path):
    cfg = compose_config("train_autoencoder", [], tmp_path / "run")
    assert cfg.trainer.max_steps == cfg.autoencoder.max_steps  # not the trainer preset's
    assert compose_config("train_autoencoder", ["autoencoder.max_steps=7"],
                          tmp_path / "run").trainer.max_steps == 7
