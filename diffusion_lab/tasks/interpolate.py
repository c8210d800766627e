"""interpolate(cfg): invert real images of a checkpoint's data into noise and walk between them.

For each of ``pairs`` pairs of validation images (a, b): x_T(a), x_T(b) by
:func:`diffusion_lab.inversion.invert` on the sampler's grid, then ``frames`` images decoded by
the same solver from slerp(x_T(a), x_T(b); t), t = 0 ... 1. The first and last frames are the
reconstructions of a and b, so the grid shows at once how well the model inverts (real image
beside its reconstruction) and whether the path between two images stays on the data
(``interpolate.png``: per row, real a | frames | real b). ``interpolate_info.json`` records the
reconstruction error (RMS over pixels in [-1, 1] units, per image), the classifier's class of
every frame and of the reconstructions (labelled image data), NFE and timings.

With ``source=noise`` the endpoints are the x_T of two seeds instead (no inversion). A latent
model inverts the encoded images (the stored autoencoder's posterior means, scaled) and its
frames are decoded; the reconstruction error is then the autoencoder's and the inversion's.
Noise is interpolated in the unit-variance scale z = x_T / sqrt(1 + sigma_max^2).
"""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from diffusion_lab.evaluation import sampler_name
from diffusion_lab.inversion import invert, slerp
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import INITIAL_NOISE_STREAM
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.real_image_edit import counting, open_image_model, write_results
from diffusion_lab.tasks.validate import check_finite, validate_counts
from diffusion_lab.utils.progress import progress_bar

#: solvers with an inverse here -> the inversion's order (DDIM only at eta = 0)
INVERTIBLE = {"euler": 1, "ddim": 1, "dpmpp_2m": 2}
SOURCES = ("val", "noise")


def validate_interpolate_config(cfg: DictConfig) -> None:
    """The CLI's own values, before the checkpoint is opened."""
    check_finite(cfg)
    validate_counts(cfg, "pairs")
    if isinstance(cfg.frames, bool) or not isinstance(cfg.frames, int) or cfg.frames < 2:
        raise ConfigError(f"frames must be an integer >= 2 (the two ends), got {cfg.frames!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {cfg.seed!r}")
    if cfg.source not in SOURCES:
        raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {cfg.source!r}")


def inversion_order(spec) -> int:
    """The inversion order of a SamplerSpec's solver; ConfigError for one without an inverse."""
    name = sampler_name(spec)
    eta = getattr(spec.solver, "keywords", {}).get("eta", 0.0)
    if name not in INVERTIBLE or eta:
        shown = f"{name}(eta={eta})" if eta else name
        raise ConfigError(f"sampler: {shown} has no deterministic inverse; use sampler=ddim "
                          f"(eta 0), sampler=euler or sampler=dpmpp")
    return INVERTIBLE[name]


def choose_pairs(y: torch.Tensor | None, count: int, num_classes: int, conditional: bool):
    """Indices (a, b) of ``count`` pairs and the class each pair is decoded with (None for an
    unconditional model): two images of class k for a conditional model, images of classes k and
    k + 1 for an unconditional one (k = pair mod classes), consecutive images without labels."""
    if y is None or num_classes == 0:
        if conditional:
            raise ConfigError("a class-conditional model needs labelled data to invert")
        return [(2 * k, 2 * k + 1) for k in range(count)], None
    by_class = [torch.nonzero(y == c)[:, 0].tolist() for c in range(num_classes)]
    used = [0] * num_classes
    pairs, classes = [], []

    def take(c: int) -> int:
        if used[c] >= len(by_class[c]):
            raise ConfigError(f"pairs={count}: the validation split has too few images of class {c}")
        used[c] += 1
        return by_class[c][used[c] - 1]

    for k in range(count):
        c = k % num_classes
        if conditional:
            pairs.append((take(c), take(c)))
        else:
            pairs.append((take(c), take((c + 1) % num_classes)))
        classes.append(c)
    return pairs, (classes if conditional else None)


def interpolate(cfg: DictConfig) -> dict:
    validate_interpolate_config(cfg)
    opened = open_image_model(cfg, "interpolate.py")
    ckpt, module, spec, sigmas = opened.ckpt, opened.module, opened.spec, opened.sigmas
    order = inversion_order(spec)
    if cfg.source == "val" and len(sigmas) < 3:
        raise ConfigError("sampler.steps must be >= 2 to invert (one step up, then down)")
    conditional = module.num_classes > 0
    denoiser = module.denoiser(use_ema=cfg.use_ema, guidance_scale=1.0)
    scale = float(torch.sqrt(1.0 + sigmas[0].double() ** 2))

    datamodule, data, labels = opened.datamodule, opened.data, opened.labels
    pairs, classes = choose_pairs(labels, cfg.pairs,
                                  datamodule.num_classes, conditional)
    if max(max(p) for p in pairs) >= len(data):
        raise ConfigError(f"pairs={cfg.pairs}: the data has only {len(data)} images")
    cond = None if classes is None else torch.tensor(classes, device=cfg.device)
    start = time.perf_counter()
    info: dict = {"checkpoint": str(cfg.ckpt), "global_step": ckpt.get("global_step"),
                  "source": cfg.source, "sampler": sampler_name(spec), "steps": spec.steps,
                  "inversion_order": order, "frames": cfg.frames, "pairs": [list(p) for p in pairs],
                  "pair_classes": classes}
    inversion_nfe = len(sigmas) - 2 if cfg.source == "val" else 0
    with progress_bar(f"inversion and {cfg.frames} frames", inversion_nfe + spec.nfe) as advance:
        counted = counting(denoiser, advance)
        z_a, z_b, a, b = _endpoints(cfg, opened, pairs, cond, order, counted, scale)
        ts = torch.linspace(0, 1, cfg.frames).tolist()
        path = torch.stack([slerp(z_a, z_b, t) for t in ts], dim=1)  # (pairs, frames, C, H, W)
        frame_cond = None if cond is None else cond.repeat_interleave(cfg.frames)
        with torch.no_grad():
            frames = spec.solver(counted, path.flatten(0, 1) * scale, sigmas, cond=frame_cond)
            frames = opened.decode(frames)
    frames = frames.float().cpu()
    frames = frames.view(len(pairs), cfg.frames, *frames.shape[1:])
    if inversion_nfe:
        info["nfe_inversion"] = inversion_nfe
    info["nfe_per_frame"] = spec.nfe
    info["seconds"] = round(time.perf_counter() - start, 2)
    if cfg.source == "val":
        a, b = a.float().cpu(), b.float().cpu()
        err = torch.cat([_rms(frames[:, 0], a), _rms(frames[:, -1], b)])
        info.update(reconstruction_rmse=float(err.mean()), reconstruction_rmse_max=float(err.max()),
                    reconstruction_rmse_per_image=err.tolist())
        rows = torch.cat([a[:, None], frames, b[:, None]], dim=1)
    else:
        rows = frames
    judge = opened.judge(cfg.paths.cache_dir) if cfg.classify and labels is not None else None
    if judge is not None:
        info.update(_classes(judge, frames, labels, pairs if cfg.source == "val" else None))
    write_results(cfg.paths.run_dir, rows, "interpolate", info,
                  ("reconstruction_rmse", "reconstruction_accuracy", "seconds"))
    print(f"wrote {info['grid']} ({len(pairs)} pairs x {cfg.frames} frames)")
    return info


def _endpoints(cfg, opened, pairs, cond, order: int, denoiser, scale: float):
    """(z_a, z_b, a, b): the unit-scale noises of each pair's ends and, for source=val, the real
    images they invert (both ends encoded and inverted in one batch); a, b are None for
    source=noise."""
    count = len(pairs)
    if cfg.source == "val":
        a = torch.stack([opened.data.x[i] for i, _ in pairs]).to(cfg.device)
        b = torch.stack([opened.data.x[j] for _, j in pairs]).to(cfg.device)
        both = None if cond is None else torch.cat([cond, cond])
        x0 = opened.encode(torch.cat([a, b]))
        z = invert(denoiser, x0, opened.sigmas, order=order, cond=both) / scale
        return z[:count], z[count:], a, b
    size = (count, *opened.module.sample_shape)
    z_a = PerSampleNoise(cfg.seed, [2 * k for k in range(count)],
                         stream=INITIAL_NOISE_STREAM).sample(size, cfg.device, torch.float32)
    z_b = PerSampleNoise(cfg.seed, [2 * k + 1 for k in range(count)],
                         stream=INITIAL_NOISE_STREAM).sample(size, cfg.device, torch.float32)
    return z_a, z_b, None, None


def _rms(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: sqrt(mean over pixels of (x - y)^2)."""
    return (x - y).pow(2).flatten(1).mean(1).sqrt()


def _classes(judge, frames: torch.Tensor, labels, pairs) -> dict:
    """The classifier's class of every frame; with inverted pairs, the share of the two
    reconstructions (first and last frames) seen as the class of their real image."""
    from diffusion_lab.metrics.classifier import predict_proba

    seen = predict_proba(judge.classifier, frames.flatten(0, 1)).argmax(1).view(frames.shape[:2])
    out = {"frame_classes": seen.tolist()}
    if pairs is not None:
        truth = torch.tensor([[int(labels[i]), int(labels[j])] for i, j in pairs])
        ends = torch.stack([seen[:, 0], seen[:, -1]], dim=1)
        out["reconstruction_accuracy"] = float((ends == truth).double().mean())
    return out
