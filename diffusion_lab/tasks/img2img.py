"""img2img(cfg): SDEdit on real validation images with a checkpoint's model and any sampler.

``images`` validation images (classes 0, 1, ... in turn), ``samples_per_image`` results each:
sample i of image j starts from y_j + sigma z with z the noise of (seed, j * samples_per_image + i)
at the first level of the sampler's grid tail that ``strength`` keeps
(:func:`diffusion_lab.sdedit.sdedit_grid`), then the sampler runs to sigma = 0. A
class-conditional model is conditioned on ``target_class``: each image's own (null), the next
one (``next``: class + 1 mod K, translating a 3 into a 4) or a fixed class (w = 1).

Written: ``img2img.png`` (per row: the image, then its results) and ``img2img_info.json``: the
steps and NFE run, the results' RMS distance to their image (pixels in [-1, 1]) and, on labelled
image data, the share of results the data classifier sees as the target class and as the
image's own class: against ``strength`` the trade between realism (and the target) and
faithfulness to the input. A latent model edits the encoded image (the stored autoencoder's
posterior mean, scaled) and its results are decoded.
"""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from diffusion_lab.evaluation import sampler_name
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import INITIAL_NOISE_STREAM, STEP_NOISE_STREAM
from diffusion_lab.samplers import solver_nfe
from diffusion_lab.sdedit import sdedit_grid, sdedit_start
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.real_image_edit import (
    counting,
    open_image_model,
    pick_images,
    write_results,
)
from diffusion_lab.tasks.validate import check_finite, validate_counts
from diffusion_lab.utils.progress import progress_bar


def validate_img2img_config(cfg: DictConfig) -> None:
    """The CLI's own values, before the checkpoint is opened."""
    check_finite(cfg)
    validate_counts(cfg, "images", "samples_per_image")
    strength = cfg.strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise ConfigError(f"strength must be in (0, 1], got {strength!r}")
    target = cfg.target_class
    if target is not None and target != "next" and (
            isinstance(target, bool) or not isinstance(target, int) or target < 0):
        raise ConfigError(f"target_class must be null, next or a class index >= 0, got {target!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {cfg.seed!r}")


def target_classes(target, source: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Each image's class to aim at: its own (None), the next (``"next"``) or one fixed class."""
    if target is None:
        return source.clone()
    if target == "next":
        return (source + 1) % num_classes
    if target >= num_classes:
        raise ConfigError(f"target_class={target}: the model has {num_classes} classes")
    return torch.full_like(source, int(target))


def img2img(cfg: DictConfig) -> dict:
    validate_img2img_config(cfg)
    opened = open_image_model(cfg, "img2img.py")
    module, spec = opened.module, opened.spec
    labels = opened.labels
    sigmas = sdedit_grid(opened.sigmas, float(cfg.strength))
    chosen = pick_images(labels, cfg.images, opened.datamodule.num_classes, len(opened.data))
    k = cfg.samples_per_image
    originals = opened.data.x[chosen]
    cond = targets = None
    if module.num_classes > 0:
        if labels is None:
            raise ConfigError("a class-conditional model needs labelled data for img2img")
        targets = target_classes(cfg.target_class, labels[chosen], module.num_classes)
        cond = targets.repeat_interleave(k).to(cfg.device)
    elif cfg.target_class is not None:
        raise ConfigError("target_class needs a class-conditional model; this one is "
                          "unconditional")
    y = opened.encode(originals.repeat_interleave(k, dim=0).to(cfg.device))  # a latent model's
    indices = list(range(len(y)))
    z = PerSampleNoise(cfg.seed, indices, stream=INITIAL_NOISE_STREAM).sample(
        tuple(y.shape), cfg.device, torch.float32)
    steps = len(sigmas) - 1
    nfe = solver_nfe(spec.solver, steps)
    denoiser = module.denoiser(use_ema=cfg.use_ema, guidance_scale=1.0)
    start = time.perf_counter()
    with progress_bar(f"img2img {len(y)} images", nfe) as advance, torch.no_grad():
        out = spec.solver(counting(denoiser, advance), sdedit_start(y, float(sigmas[0]), z),
                          sigmas, cond=cond,
                          noise=PerSampleNoise(cfg.seed, indices, stream=STEP_NOISE_STREAM))
        out = opened.decode(out)
    out = out.float().cpu()
    images = originals.repeat_interleave(k, dim=0)
    rms = (out - images).pow(2).flatten(1).mean(1).sqrt()
    info = {"checkpoint": str(cfg.ckpt), "global_step": opened.ckpt.get("global_step"),
            "strength": float(cfg.strength), "start_sigma": float(sigmas[0]),
            "sampler": sampler_name(spec), "grid_steps": spec.steps, "steps_run": steps,
            "nfe_per_sample": nfe, "images": chosen, "samples_per_image": k,
            "target_classes": None if targets is None else targets.tolist(),
            "seconds": round(time.perf_counter() - start, 2),
            "rms_to_source": float(rms.mean())}
    judge = opened.judge(cfg.paths.cache_dir) if cfg.classify and labels is not None else None
    if judge is not None:
        source = labels[chosen].repeat_interleave(k)
        info["source_class_accuracy"] = judge.accuracy(out, source)
        if targets is not None:
            info["target_class_accuracy"] = judge.accuracy(out, targets.repeat_interleave(k))
    rows = torch.cat([originals[:, None], out.view(len(chosen), k, *out.shape[1:])], dim=1)
    write_results(cfg.paths.run_dir, rows, "img2img", info,
                  ("rms_to_source", "source_class_accuracy", "target_class_accuracy", "seconds"))
    print(f"wrote {info['grid']} (strength {cfg.strength}: {steps} of {spec.steps} steps, "
          f"{nfe} NFE each)")
    return info
