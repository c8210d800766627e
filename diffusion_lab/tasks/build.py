"""Config -> objects, wired explicitly in one readable order."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.lit.module import DiffusionModule
from diffusion_lab.tasks.validate import ConfigError


def build_module(cfg: DictConfig) -> DiffusionModule:
    """backbone + schedule + objective + sampler -> DiffusionModule (nothing trained)."""
    schedule = instantiate(cfg.schedule)
    prediction = instantiate(cfg.objective.prediction)
    weighting = instantiate(cfg.objective.weighting)
    backbone = instantiate(cfg.backbone, _convert_="all")
    sampler = instantiate(cfg.sampler, _convert_="all")
    optimizer = instantiate(cfg.module.optimizer, _convert_="all")
    module = DiffusionModule(
        backbone=backbone,
        schedule=schedule,
        prediction=prediction,
        weighting=weighting,
        sampler=sampler,
        optimizer=optimizer,
        warmup_steps=cfg.module.warmup_steps,
        ema_decay=cfg.module.ema_decay,
        ema_warmup=cfg.module.ema_warmup,
        label_dropout=cfg.guidance.label_dropout if cfg.data.num_classes > 0 else 0.0,
        num_classes=int(cfg.backbone.get("num_classes", 0) or 0),
        guidance_scale=cfg.guidance.scale,
        # images live in [-1, 1]; point data has no such bound
        clip_denoised=bool(cfg.module.get("clip_denoised", True)) and cfg.data.get("image_size") is not None,
    )
    module.run_config = config_to_dict(cfg)
    return module


def build_sampler(cfg: DictConfig):
    return instantiate(cfg.sampler, _convert_="all")


def build_datamodule(cfg: DictConfig):
    """Instantiate data.module, load the data, and check it matches data.* facts."""
    dm = instantiate(cfg.data.module, _convert_="all")
    try:
        dm.setup("fit")
    except ValueError as e:  # bad values in the data itself (NaN, out of range, empty)
        raise ConfigError(f"data={cfg.data.name}: {e}") from e
    expected = int(cfg.data.num_classes)
    if dm.num_classes != expected:
        raise ConfigError(
            f"data.num_classes={expected} but the {cfg.data.name} data has {dm.num_classes} classes"
        )
    if cfg.data.get("image_size") is not None:
        c, h, w = dm.shape
        if (c, h, w) != (cfg.data.channels, cfg.data.image_size, cfg.data.image_size):
            raise ConfigError(
                f"data says {cfg.data.channels}x{cfg.data.image_size}x{cfg.data.image_size} "
                f"but the loaded images are {c}x{h}x{w}"
            )
    return dm


def build_callbacks(cfg: DictConfig) -> list:
    """The callbacks group's entries; progress bars are left out when the trainer disables them."""
    cbs = cfg.get("callbacks") or {}
    no_bar = cfg.trainer.get("enable_progress_bar") is False
    return [
        instantiate(c, _convert_="all")
        for c in cbs.values()
        if c and "_target_" in c and not (no_bar and "ProgressBar" in c._target_)
    ]


def build_logger(cfg: DictConfig):
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return False
    return instantiate(cfg.logger, _convert_="all")


def config_to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (what checkpoints and loggers store)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def module_from_checkpoint(ckpt: dict, map_location="cpu") -> DiffusionModule:
    """Rebuild the module a checkpoint was trained with and load its weights."""
    run_config = ckpt.get("diffusion_lab_config")
    if run_config is None:
        raise ConfigError("checkpoint has no diffusion_lab_config: not written by diffusion-lab")
    cfg = OmegaConf.create(run_config)
    module = build_module(cfg)
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"checkpoint weights do not fit the model built from its config "
            f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})"
        )
    return module.to(map_location).eval() if isinstance(map_location, (str, torch.device)) else module
