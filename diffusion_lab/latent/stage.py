"""A train config made latent: ``autoencoder=kl_f4`` / ``autoencoder=pretrained`` in
``scripts/train.py``.

1. ``latent_shape``: the latent's (C, h, w), known before any weights are read (a diffusers
   folder's ``config.json``, a stage checkpoint's stored facts, or the autoencoder built on the
   meta device);
2. ``make_latent_config``: the backbone is built for that shape and the denoiser's clamp to the
   image range [-1, 1] is switched off (latents have unit variance, not a range);
3. ``run_autoencoder_stage``: with ``autoencoder.path`` null the autoencoder stage runs first
   (``outputs/<name>_autoencoder/``; a requeued job finds its finished stage through
   ``resume=auto``) and the run continues with its checkpoint;
4. ``latent_datamodule``: the image data encoded (``LatentDataModule``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import load_checkpoint_file


def is_latent(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "autoencoder.model", default=None))


def autoencoder_options(cfg: DictConfig) -> dict:
    """How a diffusers folder is opened (image size, channels, padding); {} for a checkpoint."""
    model = cfg.autoencoder.model
    if not str(model.get("_target_", "")).endswith("PretrainedAutoencoderKL"):
        return {}
    return {k: model.get(k) for k in ("image_size", "image_channels", "pad_to")}


def latent_shape(cfg: DictConfig) -> tuple[int, int, int]:
    """(C, h, w) of the latents of ``cfg.data`` under ``cfg.autoencoder``; ConfigError (one line)
    when the autoencoder named does not exist or is not one."""
    if OmegaConf.is_missing(cfg.autoencoder, "path"):
        raise ConfigError(f"autoencoder={cfg.autoencoder.get('name')} needs autoencoder.path=<a "
                          "diffusers AutoencoderKL folder or an autoencoder checkpoint>")
    path = cfg.autoencoder.get("path")
    if path:
        p = Path(path)
        if p.is_dir():
            if not (p / "config.json").is_file():
                raise ConfigError(f"autoencoder.path={path} is a folder without config.json "
                                  "(not a diffusers AutoencoderKL)")
            vae = json.loads((p / "config.json").read_text())
            factor = 2 ** (len(vae["block_out_channels"]) - 1)
            pad_to = autoencoder_options(cfg).get("pad_to") or 0
            side = -(-max(int(cfg.data.image_size), int(pad_to)) // factor)
            return (int(vae["latent_channels"]), side, side)
        if not p.is_file():
            raise ConfigError(f"autoencoder.path={path} does not exist (a checkpoint of "
                              "scripts/train_autoencoder.py or a diffusers AutoencoderKL folder)")
        facts = load_checkpoint_file(p, mmap=True).get("diffusion_lab_autoencoder")
        if not facts:
            raise ConfigError(f"autoencoder.path={path} is not an autoencoder checkpoint "
                              "(write one with scripts/train_autoencoder.py)")
        return tuple(facts["latent_shape"])
    with torch.device("meta"):
        model = instantiate(cfg.autoencoder.model, _convert_="all")
    return tuple(model.latent_shape())


def make_latent_config(cfg: DictConfig) -> None:
    """Point the backbone at the latent shape and switch the [-1, 1] clamp off (in place)."""
    if image_data_backbone := "in_channels" in cfg.backbone:
        c, h, _ = latent_shape(cfg)
    with open_dict(cfg):
        if image_data_backbone:
            cfg.backbone.in_channels, cfg.backbone.image_size = c, h
        cfg.module.clip_denoised = False


def run_autoencoder_stage(cfg: DictConfig) -> None:
    """Train (or find finished) the autoencoder when ``autoencoder.path`` is null, then set it."""
    if cfg.autoencoder.get("path"):
        return
    from diffusion_lab.autoencoder.train import train_autoencoder

    run_dir = Path(cfg.paths.run_dir)
    stage_dir = Path(cfg.paths.output_root) / f"{cfg.name}_autoencoder" / run_dir.name
    plain = OmegaConf.to_container(cfg, resolve=True)
    stage = OmegaConf.create({
        "name": f"{cfg.name}_autoencoder", "seed": cfg.seed, "resume": "auto", "ckpt_path": None,
        "data": plain["data"], "autoencoder": plain["autoencoder"],
        "trainer": {**plain["trainer"], "max_steps": cfg.autoencoder.max_steps},
        "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(stage_dir),
                   "name": "csv", "version": ""},
        "paths": {**plain["paths"], "run_dir": str(stage_dir),
                  "checkpoint_dir": str(stage_dir / "checkpoints")},
        "callbacks": {
            "checkpoint": {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "dirpath": str(stage_dir / "checkpoints"), "filename": "step{step:07d}",
                           "auto_insert_metric_name": False, "save_top_k": -1,
                           "every_n_train_steps": max(1, cfg.autoencoder.max_steps // 4)},
            "reconstructions": {"_target_": "diffusion_lab.autoencoder.reconstructions.Reconstructions",
                                "every_n_steps": max(1, cfg.autoencoder.max_steps // 4)},
        },
    })
    metrics = train_autoencoder(stage)
    with open_dict(cfg):
        cfg.autoencoder.path = metrics["checkpoint"]


def latent_datamodule(cfg: DictConfig, pixels):
    """The image datamodule ``pixels`` encoded by ``cfg.autoencoder`` (loaded, set up)."""
    from diffusion_lab.autoencoder.load import load_autoencoder
    from diffusion_lab.latent.datamodule import LatentDataModule

    options = autoencoder_options(cfg)
    latent = cfg.autoencoder.get("latent") or {}
    dm = LatentDataModule(
        pixels, load_autoencoder(cfg.autoencoder.path, **options), cfg.autoencoder.path,
        cache_dir=cfg.paths.cache_dir, per_channel=bool(latent.get("per_channel", True)),
        sample_posterior=bool(latent.get("sample_posterior", True)), scale=latent.get("scale"),
        encode_batch_size=int(latent.get("encode_batch_size", 256)), options=options)
    dm.setup("fit")
    with open_dict(cfg):  # the stored config names the weights, not only their location
        cfg.autoencoder.identity = dm.identity
    return dm


def log_latent_scale(trainer, datamodule) -> None:
    """At the start of training: the scaled training latents' std (1 when the scale fits) and
    the scale itself, as scalars ``latent/scaled_std``, ``latent/scale_c<k>``."""
    from diffusion_lab.loggers.media import log_scalars

    scalars = {"latent/scaled_std": datamodule.scaled_std}
    scalars.update({f"latent/scale_c{k}": float(s) for k, s in enumerate(datamodule.codec.scale)})
    log_scalars(trainer, scalars, 0)
