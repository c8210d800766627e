"""An autoencoder from where a user keeps it, with the identity latent caches and diffusion
checkpoints are keyed by.

* a file: a checkpoint written by the autoencoder stage (``scripts/train_autoencoder.py``); it is
  opened with ``weights_only`` loading and its stored ``_target_`` must be allow-listed
  (``tasks/trusted_targets.py``), so opening it runs no code from it;
* a folder: diffusers' ``AutoencoderKL`` (``config.json`` + weights), e.g. an SD/SDXL ``vae/``.

identity = the first 16 hex digits of SHA-256 over the weights (names, shapes, bytes): the same
weights give the same identity wherever the file lives; other weights another.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file, load_stage_weights
from diffusion_lab.tasks.trusted_targets import check_stored_targets


def weights_identity(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of the model's state dict: names, shapes and values."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def autoencoder_from_checkpoint(ckpt: dict, path) -> nn.Module:
    """The autoencoder a stage checkpoint holds, weights loaded (CheckpointError: one line)."""
    config = ckpt.get("diffusion_lab_config")
    if not isinstance(config, dict) or "autoencoder" not in config or "diffusion_lab_autoencoder" not in ckpt:
        raise CheckpointError(f"{path} is not an autoencoder checkpoint of diffusion-lab "
                              "(write one with scripts/train_autoencoder.py)")
    check_stored_targets({"model": config["autoencoder"].get("model")}, path)
    model = instantiate(OmegaConf.create(config["autoencoder"]["model"]), _convert_="all")
    load_stage_weights(model, ckpt, "autoencoder.", path, "autoencoder")
    return model


def load_autoencoder(path, **options) -> tuple[nn.Module, str]:
    """(autoencoder in eval mode, frozen; identity) from a stage checkpoint or a diffusers folder.
    ``options`` (image_size, image_channels, pad_to) are for a diffusers folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} is not a diffusers AutoencoderKL folder (no config.json)")
        from diffusion_lab.autoencoder.pretrained import PretrainedAutoencoderKL

        try:
            model = PretrainedAutoencoderKL(str(path), **options)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read the AutoencoderKL in {path}: "
                                  f"{(str(e).splitlines() or [type(e).__name__])[0]}") from e
    elif path.is_file():
        model = autoencoder_from_checkpoint(load_checkpoint_file(path), path)
    else:
        raise CheckpointError(f"autoencoder not found: {path} (a checkpoint of "
                              "scripts/train_autoencoder.py or a diffusers AutoencoderKL folder)")
    model.eval().requires_grad_(False)
    return model, weights_identity(model)
