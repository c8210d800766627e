"""train_autoencoder(cfg): the autoencoder stage, with the diffusion runs' lifecycle: checks up
front (one line, exit 2), atomic checkpoints, resume (``ckpt_path=...`` / ``resume=auto``: the
weights, optimizer, step, random streams and data order), SIGTERM/SIGUSR1 checkpoint-and-stop,
the dashboard (``reconstructions.py``) and, at the end, the reconstruction error of the whole
held-out split in ``metrics.json`` beside a grid ``reconstructions.png``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.autoencoder.lit_module import AutoencoderModule
from diffusion_lab.autoencoder.reconstructions import reconstruction_report
from diffusion_lab.tasks.build import config_to_dict
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import atomic_write_json
from diffusion_lab.tasks.stage_fit import fit_stage, validate_stage_config
from diffusion_lab.utils.images import save_png


def build_autoencoder_module(cfg: DictConfig) -> AutoencoderModule:
    model = instantiate(cfg.autoencoder.model, _convert_="all")
    if not hasattr(model, "decoder"):
        raise ConfigError(f"autoencoder={cfg.autoencoder.get('name')}: a pretrained autoencoder "
                          "is used as it is, not trained (pass it to scripts/train.py)")
    module = AutoencoderModule(model, kl_weight=cfg.autoencoder.kl_weight,
                               optimizer=instantiate(cfg.autoencoder.optimizer, _convert_="all"))
    module.run_config = config_to_dict(cfg)
    return module


def validate_autoencoder_config(cfg: DictConfig) -> None:
    validate_stage_config(cfg, "autoencoder", lambda: build_autoencoder_module(cfg))


def train_autoencoder(cfg: DictConfig) -> dict:
    """Train (or resume, or find finished) the autoencoder of ``cfg``; returns its metrics."""
    validate_autoencoder_config(cfg)
    run = fit_stage(cfg, lambda: build_autoencoder_module(cfg))
    autoencoder = run.module.autoencoder
    metrics = {"global_step": run.global_step, "train_seconds": run.seconds,
               "num_parameters": sum(p.numel() for p in autoencoder.parameters()),
               "checkpoint": str(run.last),
               **held_out_reconstruction(autoencoder, run.datamodule, run.run_dir)}
    atomic_write_json(metrics, run.run_dir / "metrics.json")
    print("autoencoder: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in metrics.items()))
    return metrics


@torch.no_grad()
def held_out_reconstruction(autoencoder, datamodule, run_dir: Path) -> dict:
    """Reconstruction error (posterior mean) of the whole held-out split, the compression
    factor, and ``reconstructions.png`` of 32 of its images drawn with seed 0 (rows of inputs
    above rows of their reconstructions)."""
    autoencoder.eval()
    split = datamodule.val_set if datamodule.val_set is not None else datamodule.train_set
    x = split.x
    squared = []
    for start in range(0, len(x), 500):
        xb = x[start:start + 500]
        squared.append((autoencoder.decode(autoencoder.encode(xb)[0]).clamp(-1, 1) - xb).pow(2)
                       .flatten(1).mean(1))
    mse = torch.cat(squared)
    shown = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:32]
    image, scalars = reconstruction_report(autoencoder, x[shown])
    save_png(image, run_dir / "reconstructions.png")
    latent = autoencoder.latent_shape(tuple(x.shape[1:]))
    return {"heldout_recon_mse": float(mse.mean()), "heldout_recon_psnr_db":
            float((10 * torch.log10(4.0 / mse.clamp_min(1e-12))).mean()),
            "heldout_count": len(x), "latent_shape": list(latent),
            "compression_factor": x[0].numel() / (latent[0] * latent[1] * latent[2]),
            **{k.split("/")[1]: v for k, v in scalars.items() if "latent_std" in k}}
