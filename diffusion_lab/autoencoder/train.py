"""train_autoencoder(cfg): the autoencoder stage, with the diffusion runs' lifecycle: checks up
front (one line, exit 2), atomic checkpoints, resume (``ckpt_path=...`` / ``resume=auto``: the
weights, optimizer, step, random streams and data order), SIGTERM/SIGUSR1 checkpoint-and-stop,
the dashboard (``reconstructions.py``) and, at the end, the reconstruction error of the whole
held-out split in ``metrics.json`` beside a grid ``reconstructions.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.autoencoder.lit_module import AutoencoderModule
from diffusion_lab.autoencoder.reconstructions import reconstruction_report
from diffusion_lab.lit.final_checkpoint import FinalCheckpoint, final_step
from diffusion_lab.lit.process_group import DestroyProcessGroupAtExit
from diffusion_lab.lit.rng import TrainingRNG
from diffusion_lab.lit.signals import Preempted, Preemption
from diffusion_lab.loggers.run_record import RunRecordLogger
from diffusion_lab.tasks.build import (
    build_callbacks,
    build_datamodule,
    build_logger,
    config_to_dict,
)
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import AtomicCheckpointIO, atomic_write_json, load_checkpoint_file
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.validate import check_finite, refused_as_config_error, validate_counts
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
    check_finite(cfg)
    validate_counts(cfg, "trainer.max_steps")
    if cfg.get("resume") not in (None, False, True, "auto"):
        raise ConfigError(f"resume must be auto or false, got {cfg.get('resume')!r}")
    with refused_as_config_error("autoencoder"):
        build_autoencoder_module(cfg)
    with refused_as_config_error("data.module"):
        instantiate(cfg.data.module, _convert_="all")
    with refused_as_config_error("callbacks"):
        build_callbacks(cfg)


def train_autoencoder(cfg: DictConfig) -> dict:
    """Train (or resume, or find finished) the autoencoder of ``cfg``; returns its metrics."""
    validate_autoencoder_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.output_root) / cfg.name,
                                  auto=bool(cfg.get("resume")), run_config=config_to_dict(cfg))
    wandb_run_id = load_checkpoint_file(ckpt_path, mmap=True).get("wandb_run_id") if ckpt_path else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg, encode=False)
    module = build_autoencoder_module(cfg)
    preemption = Preemption(cfg.paths.checkpoint_dir)
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    logger = build_logger(cfg, wandb_run_id=wandb_run_id)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=[TrainingRNG(), FinalCheckpoint(last), preemption,
                                DestroyProcessGroupAtExit(), *build_callbacks(cfg)],
        logger=[*([logger] if logger else []), RunRecordLogger(run_dir)],
        default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()])
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except Preempted as e:
        raise (preemption.error or e) from None
    finally:
        if logger and type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
    if ckpt_path and not last.exists():  # resumed from a finished run: nothing was left to do
        from diffusion_lab.tasks.io import atomic_copy

        atomic_copy(ckpt_path, last)
    metrics = {"global_step": final_step(trainer), "train_seconds": round(time.perf_counter() - start, 1),
               "num_parameters": sum(p.numel() for p in module.autoencoder.parameters()),
               "checkpoint": str(last), **held_out_reconstruction(module.autoencoder, datamodule, run_dir)}
    atomic_write_json(metrics, run_dir / "metrics.json")
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
