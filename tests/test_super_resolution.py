"""Super-resolution diffusion: the conditional sampler against the exact posterior of Gaussian
data, the report's scores against their closed forms, the low-res-conditioned backbone, and the
stage from the command line (training, its report, super_resolve.py with another sampler, the
refusals)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import compose_config, refusal_line

from diffusion_lab.backbones import UNet
from diffusion_lab.backbones.low_res_conditioned import LowResConditioned
from diffusion_lab.data.digits import digits
from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers.ode import dpmpp_2m
from diffusion_lab.schedules import cosine_schedule
from diffusion_lab.super_resolution.degradation import (
    block_detail,
    downsample,
    upsample_bicubic,
    upsample_nearest,
)
from diffusion_lab.super_resolution.evaluation import (
    calibration,
    consistency_rms,
    psnr,
    super_resolution_report,
)
from diffusion_lab.super_resolution.oracle import GaussianSuperResolutionOracle

ROOT = Path(__file__).resolve().parents[1]


def _oracle(factor: int = 2, var: float = 0.2) -> GaussianSuperResolutionOracle:
    mean = 0.3 * torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(0),
                             dtype=torch.float64)
    return GaussianSuperResolutionOracle(mean, var, factor)


def test_the_degradation_and_its_inverse():
    x = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    y = downsample(x, 4)
    assert y.shape == (3, 2, 2, 2)
    assert torch.allclose(y[0, 1, 1, 0], x[0, 1, 4:8, 0:4].mean())
    assert torch.allclose(downsample(upsample_nearest(y, 4), 4), y)  # A A^+ = I
    assert torch.allclose(downsample(block_detail(x, 4), 4), torch.zeros_like(y), atol=1e-6)


def _sample_with(denoiser, y: torch.Tensor, n: int, steps: int = 100) -> torch.Tensor:
    spec = SamplerSpec(dpmpp_2m, LogSNRSpacing(), steps)
    cond = y.expand(n, *y.shape[1:]).clone()
    return spec.sample(denoiser, cosine_schedule(1000), (n, 1, 4, 4), cond=cond, seed=3)


def test_conditional_sampling_with_the_exact_denoiser_draws_the_exact_posterior():
    """x0 ~ N(m, v I), y = A x0: p(x0 | y) = N(A^+ y + (I - P) m, v (I - P)); a wrong gain
    (v / (v + sigma) for v / (v + sigma^2)) or a dropped A^+ y fails by far more than the
    tolerances."""
    oracle = _oracle()
    y = oracle.observe(oracle.sample_data(1, torch.Generator().manual_seed(2))).float()
    x = _sample_with(oracle.denoise, y, 4000).double()
    assert consistency_rms(x, y.double().expand(len(x), -1, -1, -1), 2) < 1e-3
    assert (x.mean(0) - oracle.posterior_mean(y.double())[0]).abs().max() < 0.04
    var = x.var(0)
    assert torch.allclose(var, torch.full_like(var, oracle.posterior_pixel_var), rtol=0.1)
    assert abs(float(var.mean()) / oracle.posterior_pixel_var - 1) < 0.03

    def wrong_gain(x_, sigma, cond):
        s = torch.as_tensor(sigma, dtype=x_.dtype).reshape(-1, 1, 1, 1)
        guess = oracle.mean + oracle.var / (oracle.var + s) * (x_ - oracle.mean)
        return upsample_nearest(cond.to(x_.dtype), 2) + block_detail(guess, 2)

    bad = _sample_with(wrong_gain, y, 2000).double()
    assert abs(float(bad.var(0).mean()) / oracle.posterior_pixel_var - 1) > 0.2


def test_augmented_sampling_with_the_exact_denoiser_draws_the_exact_posterior():
    """Noise-conditioning augmentation: given y_s = A x0 + s e, the block means are uncertain,
    posterior N(mu_s, tau_s^2) with tau_s^2 = 1/(f^2/v + 1/s^2); pixels add v (1 - 1/f^2). A
    denoiser that takes y_s for the exact y (ignores s) pins the block means and fails."""
    oracle, level = _oracle(), 0.3
    x0 = oracle.sample_data(1, torch.Generator().manual_seed(2))
    e = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(8), dtype=x0.dtype)
    y_s = (oracle.observe(x0) + level * e).float()
    cond = LowResConditioned.condition(y_s, torch.tensor([level]))
    assert cond.shape == (1, 2, 2, 2) and bool((cond[:, 1] == level).all())

    def exact(x_, sigma, c):
        return oracle.denoise(x_, sigma, c[:, :1], c[:, 1, 0, 0])

    x = _sample_with(exact, cond, 4000).double()
    blocks = downsample(x, 2)
    tau2 = oracle.posterior_block_var(level)
    assert tau2 == pytest.approx(1 / (4 / oracle.var + 1 / level ** 2))
    mu = oracle.posterior_block_means(y_s.double(), level)[0]
    assert (blocks.mean(0) - mu).abs().max() < 0.02
    assert (blocks.mean(0) - y_s[0]).abs().max() > 0.05  # pulled from y_s towards the prior
    assert torch.allclose(blocks.var(0), torch.full_like(mu, tau2), rtol=0.12)
    pixel_var = tau2 + oracle.posterior_pixel_var
    assert abs(float(x.var(0).mean()) / pixel_var - 1) < 0.03
    assert (x.mean(0) - oracle.posterior_mean(y_s.double(), level)[0]).abs().max() < 0.04
    # s = 0 is the plain task exactly
    y = oracle.observe(x0)
    assert torch.equal(oracle.posterior_block_means(y, 0.0), y)

    def ignores_level(x_, sigma, c):
        return oracle.denoise(x_, sigma, c[:, :1])

    bad = _sample_with(ignores_level, cond, 2000).double()
    assert float(downsample(bad, 2).var(0).max()) < 0.1 * tau2


def test_psnr_consistency_and_calibration_against_their_closed_forms():
    truth = torch.zeros(5, 1, 4, 4)
    assert psnr(truth + 0.2, truth) == pytest.approx(10 * torch.log10(torch.tensor(100.0)).item())
    y = downsample(torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(4)), 2)
    assert consistency_rms(upsample_nearest(y, 2), y, 2) < 1e-7
    assert consistency_rms(upsample_bicubic(y, 2), y, 2) > 1e-3  # bicubic is not consistent
    # calibration: 1 for exact posterior samples, (K + 1) / (2K) for K identical ones
    oracle, k = _oracle(), 4
    x0 = oracle.sample_data(3000, torch.Generator().manual_seed(5))
    yy = oracle.observe(x0)
    noise = torch.randn(k * len(x0), *x0.shape[1:], generator=torch.Generator().manual_seed(6),
                        dtype=x0.dtype)  # (I - P) n ~ N(0, I - P): exact posterior draws below
    exact = oracle.posterior_mean(yy) + oracle.var ** 0.5 * block_detail(noise, 2).reshape(
        k, *x0.shape)
    assert calibration(exact, x0) == pytest.approx(1.0, abs=0.03)
    same = oracle.posterior_mean(yy).expand(k, *x0.shape)
    assert calibration(same, x0) == pytest.approx((k + 1) / (2 * k), abs=1e-9)
    too_narrow = oracle.posterior_mean(yy) + 0.5 * (exact - oracle.posterior_mean(yy))
    assert calibration(too_narrow, x0) < 0.8


def test_the_report_ranks_the_posterior_mean_first_in_psnr_on_exact_samples():
    oracle, k = _oracle(), 4
    x0 = oracle.sample_data(300, torch.Generator().manual_seed(7)).float()
    y = oracle.observe(x0)
    spec = SamplerSpec(dpmpp_2m, LogSNRSpacing(), 15)
    samples = torch.stack([spec.sample(oracle.denoise, cosine_schedule(1000), tuple(x0.shape),
                                       cond=y, seed=0, indices=range(j * 300, (j + 1) * 300))
                           for j in range(k)])
    report = super_resolution_report(x0, y, samples, 2)
    assert report["sr_psnr_mean"] > report["sr_psnr_sample"] + 1.5  # ~ +10 log10(2K/(K+1))
    assert report["sr_consistency_sample"] < 1e-3 < report["sr_consistency_bicubic"]
    assert report["sr_calibration"] == pytest.approx(1.0, abs=0.08)
    assert report["sr_sample_std"] == pytest.approx(oracle.posterior_pixel_var ** 0.5, rel=0.1)


def test_the_backbone_sees_the_low_resolution_image():
    torch.manual_seed(0)
    net = UNet(image_size=8, in_channels=2, out_channels=1, base_channels=16, channel_mult=(1, 2),
               num_res_blocks=1, attention_resolutions=(), groups=8)
    for p in net.parameters():  # the zero-initialised head would hide the condition
        p.data.normal_(0, 0.1)
    model = LowResConditioned(net, factor=2)
    assert model.in_channels == 1 and model.low_res_shape == (1, 4, 4)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 500.0])
    y1, y2 = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    assert (model(x, t, y1) - model(x, t, y2)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="low-resolution images"):
        model(x, t, None)
    with pytest.raises(ValueError, match="low-resolution images"):
        model(x, t, torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="2 C input channels"):
        LowResConditioned(UNet(image_size=8, in_channels=1, base_channels=16, groups=8,
                               channel_mult=(1, 2), attention_resolutions=()), 2)
    with pytest.raises(ValueError, match="not divisible"):
        LowResConditioned(net, 3)


def test_the_augmented_backbone_sees_the_noise_level():
    torch.manual_seed(0)
    net = UNet(image_size=8, in_channels=3, out_channels=1, base_channels=16, channel_mult=(1, 2),
               num_res_blocks=1, attention_resolutions=(), groups=8)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    model = LowResConditioned(net, factor=2, level_channel=True)
    assert model.cond_shape == (2, 4, 4) and model.low_res_shape == (1, 4, 4)
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 500.0]), torch.randn(2, 1, 4, 4)
    low, high = (LowResConditioned.condition(y, torch.tensor([s, s])) for s in (0.0, 0.5))
    assert (model(x, t, low) - model(x, t, high)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise levels"):
        model(x, t, y)  # the image without its level
    with pytest.raises(ValueError, match=r"2 C \+ 1 input channels"):
        LowResConditioned(UNet(image_size=8, in_channels=2, out_channels=1, base_channels=16,
                               groups=8, channel_mult=(1, 2), attention_resolutions=()), 2,
                          level_channel=True)


def test_training_conditions_on_the_augmented_image_and_its_level():
    """condition(): y + s e with s ~ U[0, aug_max] per image and e ~ N(0, I), s as a constant
    channel; level 0 at sampling is y itself; a model trained without it takes only level 0."""
    from diffusion_lab.tasks.build import build_module

    module = build_module(compose_config("train", [*TINY, "super_resolution.aug_max=0.4"],
                                         Path("/nonexistent/run")))
    assert module.aug_max == 0.4 and module.backbone.level_channel
    assert module.model_facts()["super_resolution_aug_max"] == 0.4
    x0 = digits().x[:1024]
    torch.manual_seed(0)
    cond = module.condition(x0, None, training=True)
    y = downsample(x0, 2)
    level = cond[:, 1]
    assert cond.shape == (1024, 2, 4, 4) and bool((level == level[:, :1, :1]).all())
    s = level[:, 0, 0]
    assert 0 <= float(s.min()) and float(s.max()) <= 0.4
    assert float(s.mean()) == pytest.approx(0.2, abs=0.02)
    assert float(s.std()) == pytest.approx(0.4 / 12 ** 0.5, rel=0.1)
    e = (cond[:, 0] - y[:, 0]) / s.reshape(-1, 1, 1)
    assert float(e.std()) == pytest.approx(1.0, rel=0.05) and abs(float(e.mean())) < 0.05
    assert torch.equal(module.low_res_condition(y, 0.0)[:, :1], y)
    plain = build_module(compose_config("train", TINY, Path("/nonexistent/run")))
    assert not plain.backbone.level_channel and torch.equal(plain.condition(x0, None, True), y)
    with pytest.raises(ValueError, match="without noise-conditioning augmentation"):
        plain.low_res_condition(y, 0.1)


# ---------------------------------------------------------------- the stage, end to end
TINY = ["stage=super_resolution", "logger=csv", "backbone.base_channels=16",
        "backbone.num_res_blocks=1", "backbone.attention_resolutions=[]",
        "trainer.enable_progress_bar=false", "trainer.val_check_interval=100",
        "callbacks.super_resolution_grid.every_n_steps=150", "super_resolution.eval_images=100",
        "module.warmup_steps=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4x4 -> 8x8 digits, 600 steps (~45 s on 2 cores)."""
    from diffusion_lab.tasks.train import train

    root = tmp_path_factory.mktemp("super_resolution")
    os.environ.setdefault("DIFFUSION_LAB_CACHE", str(root / "cache"))
    run_dir = root / "out" / "run"
    metrics = train(compose_config("train", [*TINY, "trainer.max_steps=600"], run_dir))
    return metrics, run_dir


@pytest.mark.slow
def test_the_stage_trains_a_model_that_uses_the_low_resolution_image(trained):
    metrics, run_dir = trained
    report = json.loads((run_dir / "super_resolution.json").read_text())
    assert report["sr_images"] == 100 and report["sr_samples_per_image"] == 4
    for key in ("sr_psnr_bicubic", "sr_psnr_mean", "sr_psnr_sample", "sr_fid_sample",
                "sr_accuracy_sample", "sr_calibration"):
        assert key in metrics and report[key] == metrics[key]
    # after 600 steps the samples already agree with their low-resolution image better than
    # bicubic interpolation does, recover more of the image and of the digit, and the mean of
    # the samples beats one sample in PSNR (the posterior has spread)
    assert report["sr_consistency_sample"] < 0.8 * report["sr_consistency_bicubic"]
    assert report["sr_psnr_mean"] > report["sr_psnr_bicubic"] + 3
    assert report["sr_accuracy_mean"] > report["sr_accuracy_bicubic"] + 0.1
    assert report["sr_psnr_mean"] > report["sr_psnr_sample"]
    assert report["sr_sample_std"] > 0.01
    assert (run_dir / "super_resolution.png").stat().st_size > 0
    grids = sorted(p.name for p in (run_dir / "media" / "super_resolution_grid").glob("*.png"))
    assert grids == ["step0000150.png", "step0000300.png", "step0000450.png", "step0000600.png"]


@pytest.mark.slow
def test_samples_follow_their_own_low_resolution_image(trained):
    from diffusion_lab.tasks.build import module_from_checkpoint
    from diffusion_lab.tasks.io import load_checkpoint_file

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    module = module_from_checkpoint(load_checkpoint_file(ckpt), path=ckpt, super_resolution=True)
    images = digits().x[:64]
    low = module.low_res(images)
    out = module.super_resolve(low, sampler=SamplerSpec(dpmpp_2m, LogSNRSpacing(), 10), seed=0)
    shuffled = low.roll(1, 0)  # every image given another one's low-res version
    assert consistency_rms(out, low, 2) < 0.5 * consistency_rms(out, shuffled, 2)
    with pytest.raises(ValueError, match="super_resolve"):
        module.sample(4)


@pytest.mark.slow
@pytest.mark.parametrize("override,says", [("super_resolution.factor=4", "factor 4"),
                                           ("super_resolution.upsample=nearest", "nearest")])
def test_resuming_with_another_factor_or_upsampling_is_refused(trained, override, says, tmp_path):
    from diffusion_lab.tasks.build import build_module, check_checkpoint_fits
    from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    other = build_module(compose_config("train", [*TINY, override], tmp_path / "r"))
    with pytest.raises(CheckpointError, match=says):
        check_checkpoint_fits(other, load_checkpoint_file(ckpt), ckpt, "this run's config")
    plain = build_module(compose_config(  # the same network without the stage
        "train", [o for o in TINY if "super_resolution" not in o], tmp_path / "p"))
    with pytest.raises(CheckpointError, match="trained on backbone LowResConditioned"):
        check_checkpoint_fits(plain, load_checkpoint_file(ckpt), ckpt, "this run's config")


@pytest.mark.slow
def test_super_resolve_py_rejudges_the_checkpoint_with_another_sampler(trained, tmp_path):
    from diffusion_lab.tasks.super_resolve import super_resolve

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    out = tmp_path / "sr"
    report = super_resolve(compose_config(
        "super_resolve", [f"ckpt={ckpt}", "sampler=ddim", "sampler.steps=5", "eval_images=30",
                          "samples_per_image=2", "seed=7"], out))
    saved = json.loads((out / "super_resolution.json").read_text())
    assert saved["sr_images"] == 30 and saved["steps"] == 5 and saved["sr_seed"] == 7
    assert saved["sr_psnr_sample"] == report["sr_psnr_sample"]
    assert (out / "super_resolution.png").is_file()
    assert "sr_fid_sample" in saved and "sr_accuracy_sample" in saved
    # metrics=false: the same images and samples, without the data classifier's scores
    unscored = super_resolve(compose_config(
        "super_resolve", [f"ckpt={ckpt}", "sampler=ddim", "sampler.steps=5", "eval_images=30",
                          "samples_per_image=2", "seed=7", "metrics=false"], tmp_path / "u"))
    assert unscored["sr_psnr_sample"] == report["sr_psnr_sample"]
    assert not [k for k in unscored if "fid" in k or "accuracy" in k], unscored


@pytest.mark.slow
def test_super_resolve_py_takes_the_users_own_low_resolution_images(trained, tmp_path):
    import numpy as np
    from PIL import Image

    from diffusion_lab.tasks.super_resolve import super_resolve

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    data = digits()
    low = downsample(data.x[:6], 2)  # 6 low-resolution digits, as a base model would draw
    np.savez(tmp_path / "base_samples.npz", x=low.numpy(), labels=data.y[:6].numpy())
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(low[:3]):
        pixels = ((image[0] + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    Image.fromarray(pixels, mode="L").resize((12, 12), Image.NEAREST).save(tmp_path / "big.png")
    runs = {}
    for name, source, count in [("npz", tmp_path / "base_samples.npz", 6), ("folder", folder, 3),
                                ("file", tmp_path / "big.png", 1)]:
        out = tmp_path / name
        report = super_resolve(compose_config(
            "super_resolve", [f"ckpt={ckpt}", f"input={source}", "samples_per_image=2",
                              "sampler.steps=8"], out))
        saved = np.load(out / "super_resolved.npz")
        assert saved["samples"].shape == (2, count, 1, 8, 8) and report["sr_images"] == count
        assert report["sr_consistency_sample"] < 0.2 and (out / "super_resolution.png").is_file()
        runs[name] = saved
        # labelled input (a class-conditional base model's samples): judged as sample.py judges
        assert ("sample_accuracy" in report) == (name == "npz")
    unscored = super_resolve(compose_config(
        "super_resolve", [f"ckpt={ckpt}", f"input={tmp_path / 'base_samples.npz'}",
                          "samples_per_image=2", "sampler.steps=8", "metrics=false"],
        tmp_path / "unscored"))
    assert "sample_accuracy" not in unscored and "fid_classifier" not in unscored
    np.testing.assert_array_equal(np.load(tmp_path / "unscored" / "super_resolved.npz")["samples"],
                                  runs["npz"]["samples"])
    assert runs["npz"]["labels"].tolist() == data.y[:6].tolist()
    np.testing.assert_allclose(runs["folder"]["low_res"], low[:3].numpy(), atol=1 / 127.5)
    # an image drawn larger (12x12) is resized to the model's 4x4
    assert np.abs(runs["file"]["low_res"][0] - low[2].numpy()).mean() < 0.15


@pytest.mark.slow
def test_bad_input_images_are_one_line_and_exit_2(trained, tmp_path):
    import numpy as np

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    np.savez(tmp_path / "big.npz", x=np.zeros((2, 1, 8, 8), np.float32))
    np.savez(tmp_path / "range.npz", x=np.full((2, 1, 4, 4), 3.0, np.float32))
    for source, says in [(tmp_path / "big.npz", "super-resolves 1x4x4"),
                         (tmp_path / "range.npz", "outside [-1, 1]"),
                         (tmp_path / "missing", "no such file")]:
        line = refusal_line("super_resolve.py", f"ckpt={ckpt}", f"input={source}",
                            f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
        assert line.startswith("error: input:") and says in line, line


@pytest.mark.slow
def test_other_scripts_refuse_a_super_resolution_checkpoint_and_back(trained, tmp_path,
                                                                       make_cfg):
    from test_validation import write_checkpoint

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    for script in ("sample.py", "evaluate.py"):
        line = refusal_line(script, f"ckpt={ckpt}", f"hydra.run.dir={tmp_path / script}",
                            cwd=tmp_path)
        assert "is a super-resolution model" in line and "super_resolve.py" in line, line
    plain = write_checkpoint(make_cfg, tmp_path / "plain.ckpt")
    line = refusal_line("super_resolve.py", f"ckpt={plain}", f"hydra.run.dir={tmp_path / 'p'}",
                        cwd=tmp_path)
    assert "is not a super-resolution model" in line, line


@pytest.fixture(scope="module")
def trained_augmented(tmp_path_factory):
    """The same task with noise-conditioning augmentation up to 0.3, 150 steps (~15 s)."""
    from diffusion_lab.tasks.train import train

    root = tmp_path_factory.mktemp("super_resolution_augmented")
    os.environ.setdefault("DIFFUSION_LAB_CACHE", str(root / "cache"))
    run_dir = root / "out" / "run"
    train(compose_config("train", [*TINY, "trainer.max_steps=150", "super_resolution.aug_max=0.3",
                                   "super_resolution.eval_images=20",
                                   "super_resolution.samples_per_image=2"], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_an_augmented_model_super_resolves_at_a_chosen_level(trained_augmented, trained, tmp_path):
    import numpy as np

    from diffusion_lab.tasks.build import build_module, check_checkpoint_fits
    from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file
    from diffusion_lab.tasks.super_resolve import super_resolve

    ckpt = trained_augmented
    runs = {}
    for name, level in [("clean", 0.0), ("a", 0.2), ("b", 0.2)]:
        runs[name] = super_resolve(compose_config(
            "super_resolve", [f"ckpt={ckpt}", f"aug_level={level}", "eval_images=10",
                              "samples_per_image=2", "sampler.steps=5", "metrics=false"],
            tmp_path / name))
        assert runs[name]["sr_aug_level"] == level
    assert runs["a"]["sr_psnr_sample"] == runs["b"]["sr_psnr_sample"]  # e fixed by the seed
    assert runs["a"]["sr_psnr_sample"] != runs["clean"]["sr_psnr_sample"]
    low = downsample(digits().x[:3], 2)
    np.savez(tmp_path / "base.npz", x=low.numpy())
    report = super_resolve(compose_config(
        "super_resolve", [f"ckpt={ckpt}", f"input={tmp_path / 'base.npz'}", "aug_level=0.1",
                          "samples_per_image=1", "sampler.steps=5"], tmp_path / "input"))
    assert report["sr_aug_level"] == 0.1 and report["sr_images"] == 3
    # a level the model never saw, any level for a model trained without, a negative one
    for model, level, says in [(ckpt, 0.5, "above the levels this model was trained on"),
                               (trained[1] / "checkpoints" / "last.ckpt", 0.1,
                                "trained without noise-conditioning augmentation"),
                               (ckpt, -0.1, "aug_level must be a finite number >= 0")]:
        line = refusal_line("super_resolve.py", f"ckpt={model}", f"aug_level={level}",
                            f"hydra.run.dir={tmp_path / 'refused'}", cwd=tmp_path)
        assert line.startswith("error:") and says in line, line
    other = build_module(compose_config("train", [*TINY, "super_resolution.aug_max=0.5"],
                                        tmp_path / "r"))
    with pytest.raises(CheckpointError, match="noise-augmented up to 0.3"):
        check_checkpoint_fits(other, load_checkpoint_file(ckpt), ckpt, "this run's config")


@pytest.mark.parametrize("overrides,expected", [
    (["super_resolution.aug_max=-0.1"], "super_resolution.aug_max must be a finite number >= 0"),
    (["super_resolution.factor=3"], "not divisible"),
    (["super_resolution.factor=1"], "integer >= 2"),
    (["super_resolution.upsample=lanczos"], "super_resolution.upsample"),
    (["data=toy2d"], "points"),
    (["backbone=mlp"], "image backbone"),
    (["backbone.num_classes=10"], "not on classes"),
    (["autoencoder=kl_f4"], "pixel space"),
    (["super_resolution.samples_per_image=0"], "samples_per_image"),
])
def test_bad_stage_settings_are_one_line_and_exit_2(overrides, expected, tmp_path):
    line = refusal_line("train.py", "stage=super_resolution", *overrides,
                        f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert expected in line, line
