"""Config checks that run before any work starts: one readable line per problem.

One mechanism: the objects' own constructors hold the rules. ``validate_train_config`` builds
the model with its backbone on the meta device (no memory, no time), constructs the
datamodule (without reading data) and the Trainer, and turns the first error any constructor
raises into a :class:`ConfigError` naming the config section. The only rules written here are
those no constructor can see: every number in the config is finite, and the values the
run lifecycle itself reads (seed, step budget, resume, evaluation and sampling counts).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from diffusion_lab.tasks.errors import ConfigError

__all__ = ["ConfigError", "validate_counts", "validate_sample_config", "validate_sampling",
           "validate_train_config"]

CONSTRUCTOR_ERRORS = (ValueError, TypeError, MisconfigurationException, InstantiationException)


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def _int(cfg, key: str, minimum: int = 1):
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {v!r}")
    if v < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {v}")
    return v


def _nonfinite_numbers(node, where: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nonfinite_numbers(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nonfinite_numbers(value, f"{where}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        yield where, node


def check_finite(cfg: DictConfig, skip: tuple[str, ...] = ("hydra",)) -> None:
    """No NaN or inf anywhere in the config (they pass every ``<``/``>`` range check). A value
    that interpolates a key the config lacks yet (sampler=ddpm's ``${schedule.num_steps}``
    before the checkpoint's schedule is adopted) is checked as written."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except InterpolationResolutionError:
        plain = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    for key, value in _nonfinite_numbers({k: v for k, v in plain.items() if k not in skip}):
        raise ConfigError(f"{key} must be a finite number, got {value}")


def _one_line(e: BaseException) -> str:
    """The constructor's own message, with the config section Hydra names (``full_key``)."""
    cause = e
    while isinstance(cause, InstantiationException) and isinstance(cause.__cause__, CONSTRUCTOR_ERRORS):
        cause = cause.__cause__
    found = re.search(r"full_key: (\S+)", str(e))
    text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    text = text.split(", set env var HYDRA_FULL_ERROR")[0]  # e.g. a _target_ that is not found
    return f"{found.group(1)}: {text}" if found else text


@contextlib.contextmanager
def refused_as_config_error(section: str | None = None):
    """Re-raise a constructor's error as ConfigError (one line, the section named)."""
    try:
        yield
    except ConfigError:
        raise
    except CONSTRUCTOR_ERRORS as e:
        line = _one_line(e)
        if section and not line.startswith(section):
            line = f"{section}: {line}"
        raise ConfigError(line) from e


def _zero_denoiser(x, sigma, cond=None):
    return torch.zeros_like(x)


def validate_sampling(cfg: DictConfig, schedule, module=None) -> None:
    """Sampler and guidance values (shared by training and the sampling CLIs): the sampler is
    built and run once on ``schedule`` for a one-number sample with a zero denoiser, so the
    spacing's and the solver's own checks run (no more steps than training timesteps, eta in
    [0, 1], ...), and ``guidance.scale`` must suit ``module`` when given."""
    with refused_as_config_error("sampler"):
        sampler = instantiate(cfg.sampler, _convert_="all")
        sampler.sample(_zero_denoiser, schedule, (1, 1))
    if module is not None:
        with refused_as_config_error():
            module.check_guidance_scale(_get(cfg, "guidance.scale"), name="guidance.scale")


def validate_sample_config(cfg: DictConfig) -> None:
    """The sampling CLI's own values, before the checkpoint is opened."""
    check_finite(cfg)
    _int(cfg, "seed", minimum=0)
    validate_counts(cfg, *[k for k in ("batch_size", "num_samples", "num_points", "samples_per_class")
                           if _get(cfg, k) is not None])
    if _get(cfg, "metrics") not in (None, True, False):
        raise ConfigError(f"metrics must be true or false, got {_get(cfg, 'metrics')!r}")


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning announces each Trainer it builds; the checking one stays silent."""
    names = ["lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def validate_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first wrong type or impossible value found."""
    from diffusion_lab.tasks.build import build_callbacks, build_module

    check_finite(cfg)
    _int(cfg, "seed", minimum=0)
    _int(cfg, "trainer.max_steps")
    if _get(cfg, "trainer.accumulate_grad_batches") is not None:
        _int(cfg, "trainer.accumulate_grad_batches")
    if _get(cfg, "resume") not in (None, False, True, "auto"):
        raise ConfigError(f"resume must be auto or false, got {_get(cfg, 'resume')!r}")
    if _get(cfg, "module.optimizer.lr") == 0:
        raise ConfigError("module.optimizer.lr must be > 0, got 0")
    if cfg.get("super_resolution"):
        from diffusion_lab.tasks.super_resolve import validate_super_resolution_config

        validate_super_resolution_config(cfg)
    if cfg.get("text"):
        from diffusion_lab.tasks.text_to_image import validate_text_to_image_config

        validate_text_to_image_config(cfg)

    with refused_as_config_error():
        module = build_module(cfg, meta=True)
    with refused_as_config_error("module.optimizer"):
        module.configure_optimizers()
    validate_sampling(cfg, module.schedule)
    if _get(cfg, "eval.enabled"):
        _int(cfg, "eval.samples_per_class")
        with refused_as_config_error():
            module.check_guidance_scale(_get(cfg, "eval.guidance_scale"), name="eval.guidance_scale")
    with refused_as_config_error("data.module"):
        instantiate(cfg.data.module, _convert_="all")  # the constructor only: no data is read
    with refused_as_config_error("callbacks"):
        build_callbacks(cfg)
    with refused_as_config_error("trainer"), _quiet_lightning():
        trainer_cfg = cfg.trainer
        if str(trainer_cfg.get("precision")) == "auto":  # resolved by train() (utils.hardware)
            from diffusion_lab.utils.hardware import auto_precision

            trainer_cfg = OmegaConf.merge(trainer_cfg, {"precision": auto_precision(
                str(trainer_cfg.get("accelerator", "cpu")))})
        instantiate(trainer_cfg, logger=False, callbacks=[])


def validate_pixel_image_stage(cfg: DictConfig, stage: str, latent: str) -> None:
    """A stage that needs images in pixel space and an image backbone (super-resolution,
    text-to-image): ConfigError (one line) for points data, a latent model or an MLP."""
    from diffusion_lab.latent.stage import is_latent

    if cfg.data.get("image_size") is None:
        raise ConfigError(f"stage={stage} needs images; data={cfg.data.name} are points")
    if is_latent(cfg):
        raise ConfigError(f"stage={stage} runs in pixel space: use autoencoder=none "
                          f"(latent {latent} is not built)")
    if "in_channels" not in cfg.backbone:
        raise ConfigError(f"stage={stage} needs an image backbone (unet_*, dit_*), got "
                          f"{cfg.backbone._target_.rsplit('.', 1)[-1]}")


def validate_counts(cfg: DictConfig, *keys: str) -> None:
    """Each of ``keys`` an integer >= 1 (sample, point and frame counts)."""
    for key in keys:
        _int(cfg, key)
