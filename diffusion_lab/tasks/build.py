"""Config -> objects, wired explicitly in one readable order."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.lit.compile import CompileOptions
from diffusion_lab.lit.module import DiffusionModule
from diffusion_lab.lit.nonfinite import first_nonfinite
from diffusion_lab.presets import CONF_DIR
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import CheckpointError
from diffusion_lab.tasks.trusted_targets import check_stored_targets


def build_module(cfg: DictConfig, meta: bool = False) -> DiffusionModule:
    """backbone + schedule + objective + sampler -> DiffusionModule (nothing trained).

    ``meta=True`` builds the backbone on PyTorch's meta device (shapes, no memory, no time):
    every constructor runs its own checks, which is how ``validate.py`` checks a config.
    """
    schedule = instantiate(cfg.schedule)
    prediction = instantiate(cfg.objective.prediction)
    weighting = instantiate(cfg.objective.weighting)
    # training timestep draws (timestep_sampling.py); configs without them: U{0..T-1}
    timesteps = instantiate(cfg.objective.timesteps) if cfg.objective.get("timesteps") else None
    super_resolution = cfg.get("super_resolution")
    text = cfg.get("text")
    with torch.device("meta") if meta else contextlib.nullcontext():
        if super_resolution:  # stage=super_resolution: the backbone sees [x, up(y)]
            from diffusion_lab.super_resolution.build import low_res_backbone

            backbone = low_res_backbone(cfg.backbone, super_resolution)
        elif text:  # stage=text_to_image: cross-attention to a prompt's tokens
            from diffusion_lab.text_to_image.build import text_backbone

            backbone = text_backbone(cfg.backbone, text)
        else:
            backbone = instantiate(cfg.backbone, _convert_="all")
    sampler = instantiate(cfg.sampler, _convert_="all")
    optimizer = instantiate(cfg.module.optimizer, _convert_="all")
    module_class, stage_options = DiffusionModule, {}
    if cfg.get("distill"):  # stage=distill: the student of a trained checkpoint
        from diffusion_lab.distill.build import student_options

        module_class, stage_options = student_options(cfg.distill)
    elif super_resolution:
        from diffusion_lab.super_resolution.module import SuperResolutionModule

        module_class, stage_options = SuperResolutionModule, {
            "factor": super_resolution.factor,
            "aug_max": float(super_resolution.get("aug_max", 0.0) or 0.0)}
    elif text:
        from diffusion_lab.text_to_image.build import caption_grammar
        from diffusion_lab.text_to_image.module import TextToImageModule

        module_class, stage_options = TextToImageModule, {"grammar": caption_grammar(text)}
    module = module_class(
        backbone=backbone,
        schedule=schedule,
        prediction=prediction,
        weighting=weighting,
        sampler=sampler,
        optimizer=optimizer,
        warmup_steps=cfg.module.warmup_steps,
        lr_decay=str(cfg.module.get("lr_decay", "constant")),
        lr_final_fraction=float(cfg.module.get("lr_final_fraction", 0.1)),
        lr_decay_steps=int(cfg.trainer.get("max_steps", -1) or -1) if "trainer" in cfg else None,
        ema_decay=cfg.module.ema_decay,
        ema_warmup=cfg.module.ema_warmup,
        label_dropout=cfg.guidance.label_dropout if cfg.data.num_classes > 0 else 0.0,
        num_classes=0 if text else int(cfg.backbone.get("num_classes", 0) or 0),
        guidance_scale=cfg.guidance.scale,
        # images live in [-1, 1]; point data has no such bound
        clip_denoised=bool(cfg.module.get("clip_denoised", True)) and cfg.data.get("image_size") is not None,
        max_consecutive_nonfinite=int(cfg.module.get("max_consecutive_nonfinite", 20)),
        timesteps=timesteps,
        compile_options=CompileOptions.from_config(cfg.module),
        **stage_options,
    )
    module.run_config = config_to_dict(cfg)
    return module




def backbone_preset(name: str, *, image_size: int | None = None, channels: int | None = None,
                    num_classes: int = 0, dim: int | None = None, **overrides):
    """The backbone of ``conf/backbone/<name>.yaml`` for data of the given shape (what
    ``data.image_size``, ``data.channels``, ``data.num_classes``, ``data.dim`` would say),
    with ``overrides`` of its own keys (e.g. ``out_channels``)."""
    path = CONF_DIR / "backbone" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no backbone preset {name!r} (no {path})")
    cfg = OmegaConf.create({"data": {"image_size": image_size, "channels": channels,
                                     "num_classes": num_classes, "dim": dim},
                            "backbone": OmegaConf.load(path)})
    return instantiate(cfg.backbone, **overrides, _convert_="all")


def build_sampler(cfg: DictConfig, schedule=None):
    """The SamplerSpec of ``cfg.sampler``; with ``schedule``, its grid is computed once here so
    a spacing that cannot serve it (e.g. no fitted grid for spacing=optimized) is a ConfigError."""
    spec = instantiate(cfg.sampler, _convert_="all")
    if schedule is not None:
        try:
            spec.sigmas(schedule)
        except ValueError as e:
            raise ConfigError(f"sampler: {e}") from None
    return spec



def adopt_checkpoint_schedule(cfg: DictConfig, ckpt: dict) -> None:
    """Give a sampling config (sample.py, evaluate.py) the schedule the checkpoint was trained
    with, so ``sampler.steps: ${schedule.num_steps}`` (sampler=ddpm) resolves to its T."""
    stored = (ckpt.get("diffusion_lab_config") or {}).get("schedule")
    if stored is None or "schedule" in cfg:
        return
    with open_dict(cfg):
        cfg.schedule = OmegaConf.create(stored)


def checkpoint_sampler(cfg: DictConfig, ckpt: dict, module, *, check_guidance: bool = False):
    """A sampling CLI's checks of ``cfg`` against the checkpoint's model, then its sampler: the
    schedule agrees with the one ``ckpt`` records (and is adopted, for ``sampler.steps``), the
    sampler runs on it and, with ``check_guidance``, ``guidance.scale`` suits the model."""
    from diffusion_lab.tasks.schedule_check import check_schedule_agreement
    from diffusion_lab.tasks.validate import validate_sampling

    check_schedule_agreement(cfg, ckpt, module.schedule, cfg.ckpt)
    adopt_checkpoint_schedule(cfg, ckpt)
    validate_sampling(cfg, module.schedule, module if check_guidance else None)
    return build_sampler(cfg, module.schedule)


def build_datamodule(cfg: DictConfig, encode: bool = True):
    """Instantiate data.module, load the data, and check it matches data.* facts; with an
    autoencoder in ``cfg`` (and ``encode``), the data encoded to its latents."""
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
    from diffusion_lab.latent.stage import is_latent, latent_datamodule

    return latent_datamodule(cfg, dm) if encode and is_latent(cfg) else dm


def build_callbacks(cfg: DictConfig) -> list:
    """The callbacks group's entries; progress bars are left out when the trainer disables
    them, and the learning-rate monitor when there is no logger to write to."""
    cbs = cfg.get("callbacks") or {}
    no_bar = cfg.trainer.get("enable_progress_bar") is False
    no_logger = not cfg.get("logger") or "_target_" not in cfg.logger

    def wanted(c) -> bool:
        target = c._target_
        return not (no_bar and "progress" in target.lower()) and not (no_logger and "LearningRateMonitor" in target)

    return [instantiate(c, _convert_="all") for c in cbs.values() if c and "_target_" in c and wanted(c)]


def build_logger(cfg: DictConfig, wandb_run_id: str | None = None):
    """The logger, or False; a W&B logger continues ``wandb_run_id`` when one is given."""
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return False
    if wandb_run_id and cfg.logger._target_.endswith("wandb_logger"):
        return instantiate(cfg.logger, _convert_="all", resume_id=wandb_run_id)
    return instantiate(cfg.logger, _convert_="all")


def config_to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (what checkpoints and loggers store)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


# The parts of a stored config that opening a checkpoint instantiates.
STORED_SECTIONS = ("schedule", "objective", "backbone", "sampler", "module", "data")


def stored_config(ckpt: dict, path="checkpoint") -> DictConfig:
    """The run config a checkpoint holds, once every ``_target_`` in it is known to be one of
    the project's own (``trusted_targets.py``); CheckpointError, one line, otherwise."""
    run_config = ckpt.get("diffusion_lab_config")
    if not isinstance(run_config, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} has no diffusion_lab_config: not written by diffusion-lab")
    check_stored_targets(run_config, path, STORED_SECTIONS)
    return OmegaConf.create(run_config)


def module_from_checkpoint(ckpt: dict, map_location="cpu", path="checkpoint",
                           autoencoder: str | None = None, latent_scale=None,
                           super_resolution: bool = False,
                           text_to_image: bool = False) -> DiffusionModule:
    """Rebuild the module a checkpoint was trained with and load its weights; a latent model
    gets its decoder back (``latent/codec.py``: ``autoencoder`` and ``latent_scale`` are checked
    against what the checkpoint stores, never silently used). A super-resolution model
    (stage=super_resolution) samples from low-resolution images: only callers that give them
    (``super_resolution=True``) get one, the others a ConfigError naming super_resolve.py;
    a text-to-image model (stage=text_to_image) samples for prompts: only
    ``text_to_image=True`` callers get one.

    Raises CheckpointError, one line naming the mismatch, when the weights do not fit the
    model the stored config builds, or hold NaN/inf, or the config names a class that is not
    the project's own.
    """
    train_cfg = stored_config(ckpt, path)
    for section, wanted, stage, model, what, script in (
            ("super_resolution", super_resolution, "super_resolution", "super-resolution",
             "from low-resolution images", "super_resolve.py ckpt={}"),
            ("text", text_to_image, "text_to_image", "text-to-image", "for prompts",
             "text_to_image.py ckpt={} prompts=...")):
        if bool(train_cfg.get(section)) != wanted:
            raise ConfigError(
                f"{path} is a {model} model (stage={stage}): it samples {what}; use "
                f"scripts/{script.format(path)}" if not wanted else
                f"{path} is not a {model} model (train one with scripts/train.py stage={stage})")
    try:
        module = build_module(train_cfg)
    except Exception as e:  # Hydra wraps the constructor's own error
        cause = e.__cause__ or e
        raise CheckpointError(
            f"{path}: cannot rebuild the model from the config stored in it "
            f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"
        ) from e
    check_checkpoint_fits(module, ckpt, path, "the config stored in it")
    bad = first_nonfinite(ckpt["state_dict"])
    if bad is not None:
        raise CheckpointError(f"{path} holds non-finite weights: {bad[0]} has {bad[1]} NaN/inf values")
    module.load_state_dict(ckpt["state_dict"])
    if ckpt.get("diffusion_lab_latent"):
        from diffusion_lab.latent.codec import codec_from_facts

        module.codec = codec_from_facts(ckpt["diffusion_lab_latent"], path, autoencoder, latent_scale)
    elif autoencoder is not None or latent_scale is not None:
        raise ConfigError(f"{path} is a pixel-space model: autoencoder_path and latent_scale do not apply")
    return module.to(map_location).eval() if isinstance(map_location, (str, torch.device)) else module


_FACTS = {  # what DiffusionModule.model_facts() records, as a user reads it
    "backbone": lambda v: f"backbone {v}",
    "sample_shape": lambda v: f"data of shape {'x'.join(map(str, v))}",
    "num_classes": lambda v: f"{v} classes",
    "super_resolution_factor": lambda v: f"super-resolution by a factor {v}",
    "super_resolution_upsample": lambda v: f"super-resolution from {v}-upsampled images",
    "super_resolution_aug_max": lambda v: f"low-resolution images noise-augmented up to {v}",
    "text_vocabulary": lambda v: f"prompts in the words {' '.join(map(str, v))}",
    "text_slant_threshold": lambda v: f"captions with slant threshold {v}",
    "text_holdout": lambda v: f"captions holding out {list(v) or 'nothing'}",
}


def _plain(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def check_checkpoint_fits(module: DiffusionModule, ckpt: dict, path, built_from: str) -> None:
    """Raise CheckpointError when ``ckpt`` cannot be loaded into ``module`` (built from ``built_from``)."""
    saved, mine = ckpt.get("diffusion_lab_model") or {}, module.model_facts()
    for key, say in _FACTS.items():
        if key in saved and _plain(saved[key]) != _plain(mine.get(key)):
            theirs = say(mine[key]) if key in mine else f"no {say(saved[key])}"
            raise CheckpointError(
                f"{path} was trained on {say(saved[key])}, but {built_from} builds a model "
                f"for {theirs}"
            )
    own, theirs = module.state_dict(), ckpt["state_dict"]
    for key, value in theirs.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{path} does not fit the model {built_from} builds (a different backbone shape): "
                f"{key} is {list(value.shape)} in the checkpoint, {list(own[key].shape)} in the model"
            )
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the model {built_from} builds (a different backbone): "
            f"missing {len(missing)} weights {missing[:2]}, unexpected {len(unexpected)} {unexpected[:2]}"
        )
