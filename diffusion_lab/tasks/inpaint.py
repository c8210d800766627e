"""inpaint(cfg): fill a masked region of real validation images with a checkpoint's model.

``images`` validation images (classes 0, 1, ... in turn) lose the pixels of ``mask``; each gets
``samples_per_image`` completions (sample i of image j uses the noise of (seed, j *
samples_per_image + i)) by :func:`diffusion_lab.inpainting.known_region_denoiser` under

* ``resample`` = 1: the configured sampler itself (replacement; any solver);
* ``resample`` = r > 1: RePaint (:func:`diffusion_lab.inpainting.repaint`) on the configured
  sampler's grid: r ancestral down-and-up steps per level, NFE r (n - 1) + 1.

A class-conditional model completes each image as its own class (w = 1). Written:
``inpaint.png`` (per row: the image, the masked image with the hidden pixels grey, the
completions) and ``inpaint_info.json``: NFE, the largest change to a known pixel (0: they are
kept), the completions' RMS distance to the hidden pixels, and on labelled image data the share
of completions the data classifier sees as the image's class beside the same share for the
masked images themselves (what the fill adds).
"""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from diffusion_lab.evaluation import sampler_name
from diffusion_lab.inpainting import known_region_denoiser, repaint, repaint_nfe
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import INITIAL_NOISE_STREAM, STEP_NOISE_STREAM
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.real_image_edit import (
    counting,
    open_image_model,
    pick_images,
    write_results,
)
from diffusion_lab.tasks.validate import check_finite, validate_counts
from diffusion_lab.utils.progress import progress_bar

MASKS = ("center", "left", "right", "top", "bottom", "random")


def validate_inpaint_config(cfg: DictConfig) -> None:
    """The CLI's own values, before the checkpoint is opened."""
    check_finite(cfg)
    validate_counts(cfg, "images", "samples_per_image", "resample")
    if cfg.mask not in MASKS:
        raise ConfigError(f"mask must be one of {', '.join(MASKS)}, got {cfg.mask!r}")
    fraction = cfg.random_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"random_fraction must be in (0, 1), got {fraction!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {cfg.seed!r}")


def region_mask(kind: str, shape: tuple[int, ...], fraction: float = 0.5,
                seed: int = 0) -> torch.Tensor:
    """(1, H, W) float mask, 1 where the pixel is KNOWN, 0 where it is to be filled: the
    central square of half the side, a half (left, right, top, bottom) or ``fraction`` of the
    pixels at random (seeded), the same for every channel."""
    h, w = shape[-2:]
    known = torch.ones(1, h, w)
    if kind == "center":
        known[:, h // 4: h - h // 4, w // 4: w - w // 4] = 0
    elif kind == "left":
        known[:, :, : w // 2] = 0
    elif kind == "right":
        known[:, :, w // 2:] = 0
    elif kind == "top":
        known[:, : h // 2] = 0
    elif kind == "bottom":
        known[:, h // 2:] = 0
    elif kind == "random":
        g = torch.Generator().manual_seed(seed)
        known = (torch.rand(1, h, w, generator=g) >= fraction).float()
    else:
        raise ConfigError(f"mask must be one of {', '.join(MASKS)}, got {kind!r}")
    return known


def inpaint(cfg: DictConfig) -> dict:
    validate_inpaint_config(cfg)
    # the mask is in pixels: a latent model could not keep the known pixels exactly
    opened = open_image_model(cfg, "inpaint.py", latent=False)
    ckpt, module, spec, sigmas = opened.ckpt, opened.module, opened.spec, opened.sigmas
    datamodule, data, labels = opened.datamodule, opened.data, opened.labels
    chosen = pick_images(labels, cfg.images, datamodule.num_classes, len(data))
    k = cfg.samples_per_image
    originals = data.x[chosen]
    known = originals.repeat_interleave(k, dim=0).to(cfg.device)
    mask = region_mask(cfg.mask, tuple(module.sample_shape), cfg.random_fraction,
                       cfg.seed).to(cfg.device)
    cond = None
    if module.num_classes > 0:
        if labels is None:
            raise ConfigError("a class-conditional model needs labelled data to inpaint")
        cond = labels[chosen].repeat_interleave(k).to(cfg.device)
    inpainting = known_region_denoiser(module.denoiser(use_ema=cfg.use_ema, guidance_scale=1.0),
                                       known, mask)
    indices = list(range(len(known)))
    scale = float(torch.sqrt(1.0 + sigmas[0].double() ** 2))
    x = PerSampleNoise(cfg.seed, indices, stream=INITIAL_NOISE_STREAM).sample(
        tuple(known.shape), cfg.device, torch.float32) * scale
    step_noise = PerSampleNoise(cfg.seed, indices, stream=STEP_NOISE_STREAM)
    resample = int(cfg.resample)
    nfe = repaint_nfe(spec.steps, resample) if resample > 1 else spec.nfe
    start = time.perf_counter()
    with progress_bar(f"inpainting {len(known)} images", nfe) as advance, torch.no_grad():
        counted = counting(inpainting, advance)
        if resample > 1:
            out = repaint(counted, x, sigmas, resample=resample, cond=cond, noise=step_noise)
        else:
            out = spec.solver(counted, x, sigmas, cond=cond, noise=step_noise)
    out = out.float().cpu()
    seconds = time.perf_counter() - start
    known_cpu, mask_cpu = known.cpu(), mask.cpu()
    hidden = (1 - mask_cpu).expand_as(known_cpu)
    info = {
        "checkpoint": str(cfg.ckpt), "global_step": ckpt.get("global_step"), "mask": cfg.mask,
        "hidden_fraction": float(1 - mask_cpu.mean()), "images": chosen, "samples_per_image": k,
        "method": f"repaint (resample={resample})" if resample > 1 else "replacement",
        "sampler": sampler_name(spec), "steps": spec.steps, "nfe_per_sample": nfe,
        "seconds": round(seconds, 2),
        "known_max_error": float(((out - known_cpu) * mask_cpu).abs().max()),
        "completion_rmse": float(((out - known_cpu) ** 2 * hidden).sum()
                                 / hidden.sum()) ** 0.5,
    }
    masked = originals * mask_cpu  # hidden pixels shown as 0 (mid-grey)
    judge = opened.judge(cfg.paths.cache_dir) if cfg.classify and labels is not None else None
    if judge is not None:
        info.update(completion_accuracy=judge.accuracy(out, labels[chosen].repeat_interleave(k)),
                    masked_accuracy=judge.accuracy(masked, labels[chosen]))
    rows = torch.cat([originals[:, None], masked[:, None], out.view(len(chosen), k, *out.shape[1:])],
                     dim=1)
    write_results(cfg.paths.run_dir, rows, "inpaint", info,
                  ("completion_accuracy", "masked_accuracy", "completion_rmse", "seconds"))
    print(f"wrote {info['grid']} ({len(chosen)} images x {k} completions, {nfe} NFE each)")
    return info
