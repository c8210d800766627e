"""What a super-resolution model is judged by, against the two classical answers.

For held-out images x with y = A x, three reconstructions:

* bicubic interpolation of y (the classical baseline);
* the posterior mean, estimated by the mean of K model samples: the MMSE reconstruction a
  regression network converges to, best in PSNR and blurry;
* single posterior samples x_k ~ p(x | y): sharp, one plausible image each.

Scores, each a mean over images: PSNR = 10 log10(2^2 / MSE) (pixels in [-1, 1]); consistency,
the RMS of A x_hat - y (a sample that ignores y is inconsistent); the per-pixel standard deviation
of the K samples (diversity); with labelled data the data classifier's accuracy on the true label
and FID in its features (``evaluation.SampleJudge``; beside the FID of the true images, the
floor at that image count). And the calibration of the sampled
posterior: for exact samples and truth drawn from the same p(x | y),

    E||x_k - x||^2 = 2 tr Cov[x | y],   E||mean_K - x||^2 = (1 + 1/K) tr Cov[x | y],

so calibration = (MSE(sample) / MSE(mean_K)) (K + 1) / (2 K) is 1 for a calibrated model,
below 1 when the samples are too alike (at (K + 1)/(2K) for identical ones), above when too
spread.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.super_resolution.degradation import (
    downsample,
    upsample_bicubic,
    upsample_nearest,
)
from diffusion_lab.utils.progress import progress_bar


def heldout_images(datamodule, count: int) -> tuple[Tensor, Tensor]:
    """(x, y) of ``count`` images of the validation split (the training split when there is
    none): the same fixed random subset every time (seed 0), so a split stored class by class
    is still judged on every class."""
    split = datamodule.val_set if datamodule.val_set is not None else datamodule.train_set
    pick = torch.randperm(len(split.x), generator=torch.Generator().manual_seed(0))[:count]
    return split.x[pick], split.y[pick]


def per_image_mse(x: Tensor, ref: Tensor) -> Tensor:
    return (x.double() - ref.double()).pow(2).flatten(1).mean(1)


def psnr(x: Tensor, ref: Tensor) -> float:
    """Mean over images of 10 log10(4 / MSE_i), pixels in [-1, 1] (peak-to-peak 2)."""
    return float((10 * torch.log10(4.0 / per_image_mse(x, ref).clamp_min(1e-12))).mean())


def consistency_rms(x: Tensor, low_res: Tensor, factor: int) -> float:
    """RMS of A x - y over all low-resolution pixels."""
    return float(per_image_mse(downsample(x, factor), low_res).mean().sqrt())


def calibration(samples: Tensor, truth: Tensor) -> float:
    """(mean_k MSE(x_k, x) / MSE(mean_k x_k, x)) (K + 1) / (2 K); 1 for exact posterior samples."""
    k = samples.shape[0]
    if k < 2:
        raise ValueError("calibration needs at least 2 samples per image")
    sample_mse = torch.stack([per_image_mse(s, truth) for s in samples]).mean()
    mean_mse = per_image_mse(samples.mean(0), truth).mean()
    return float(sample_mse / mean_mse * (k + 1) / (2 * k))


#: PerSampleNoise stream of the augmentation noise e of image n (0-2 belong to the samplers and
#: the x_t strips)
CONDITION_NOISE_STREAM = 3


def augmentation_noise(low_res: Tensor, seed: int) -> Tensor:
    """e ~ N(0, I) for each low-resolution image n, from (seed, n): the same for all K samples of
    an image, whatever the batch."""
    return PerSampleNoise(seed, range(low_res.shape[0]), stream=CONDITION_NOISE_STREAM).sample(
        low_res.shape)


@torch.no_grad()
def super_resolve_all(module, low_res: Tensor, *, samples_per_image: int, seed: int,
                      sampler=None, batch_size: int = 500, progress: str | None = None,
                      aug_level: float = 0.0) -> Tensor:
    """(K, N, C, H, W) samples; sample k of image n uses the noise of index k N + n, so the
    result does not depend on ``batch_size``. ``aug_level`` s > 0 (a model trained with
    noise-conditioning augmentation): every sample of image n is conditioned on
    y_n + s e_n (``augmentation_noise``) and s."""
    n = low_res.shape[0]
    spec = module.sampler_or_default(sampler)
    noise = augmentation_noise(low_res, seed) if aug_level else None
    out = torch.empty(samples_per_image, n, *module.sample_shape)
    starts = range(0, n, batch_size)
    with progress_bar(progress, samples_per_image * len(starts) * spec.steps) as advance:
        for k in range(samples_per_image):
            for start in starts:
                stop = min(n, start + batch_size)
                out[k, start:stop] = module.super_resolve(
                    low_res[start:stop], sampler=spec, seed=seed,
                    indices=range(k * n + start, k * n + stop),
                    callback=lambda info: advance(), aug_level=aug_level,
                    aug_noise=None if noise is None else noise[start:stop]).cpu()
    return out


def super_resolution_report(truth: Tensor, low_res: Tensor, samples: Tensor, factor: int,
                            judge=None, labels: Tensor | None = None) -> dict:
    """The scores above for bicubic, posterior mean and posterior samples (``samples``: (K, N,
    ...)); accuracy and FID when a ``judge`` and the true ``labels`` are given (FID of the
    first sample of each image)."""
    outputs = {"bicubic": upsample_bicubic(low_res, factor), "mean": samples.mean(0)}
    report: dict = {"sr_images": int(truth.shape[0]), "sr_samples_per_image": int(samples.shape[0])}
    for name, x in outputs.items():
        report[f"sr_psnr_{name}"] = psnr(x, truth)
        report[f"sr_consistency_{name}"] = consistency_rms(x, low_res, factor)
    report["sr_psnr_sample"] = sum(psnr(s, truth) for s in samples) / samples.shape[0]
    report["sr_consistency_sample"] = sum(consistency_rms(s, low_res, factor)
                                          for s in samples) / samples.shape[0]
    if samples.shape[0] > 1:
        report["sr_sample_std"] = float(samples.double().std(0).mean())
        report["sr_calibration"] = calibration(samples, truth)
    if judge is not None and labels is not None:
        outputs["sample"] = samples[0]
        for name, x in outputs.items():
            report[f"sr_accuracy_{name}"] = judge.accuracy(x, labels)
            if len(x) >= 2:
                report[f"sr_fid_{name}"] = judge.fid(x)
        report["sr_accuracy_truth"] = judge.accuracy(truth, labels)
        if len(truth) >= 2:  # the floor at this many images: FID of the true images themselves
            report["sr_fid_truth"] = judge.fid(truth)
    return report


def comparison_grid(truth: Tensor | None, low_res: Tensor, samples: Tensor, factor: int,
                    max_images: int = 8, max_samples: int = 4) -> tuple[Tensor, int]:
    """(images, columns): per image one row of low-res (blocks), bicubic, posterior mean,
    up to ``max_samples`` samples and the truth (when there is one)."""
    n, k = min(max_images, low_res.shape[0]), min(max_samples, samples.shape[0])
    columns = [upsample_nearest(low_res[:n], factor), upsample_bicubic(low_res[:n], factor),
               samples[:, :n].mean(0), *samples[:k, :n], *([] if truth is None else [truth[:n]])]
    return torch.stack(columns, 1).flatten(0, 1), len(columns)
