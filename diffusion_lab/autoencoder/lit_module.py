"""The Lightning module of the autoencoder stage.

Loss per image (the Stable Diffusion VAE objective without its perceptual and adversarial terms):
    L = mean_pixels (x - D(z))^2 + kl_weight * KL(q(z|x) || N(0, I)) / num_pixels,
    z = mean + exp(logvar / 2) eps, (mean, logvar) = E(x).
A small ``kl_weight`` keeps the latents close to a Gaussian without blurring the reconstructions;
their scale is then arbitrary, which is why the diffusion stage measures it (``latent.scale``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import lightning as L
import torch
from torch import nn

from diffusion_lab.autoencoder.kl_autoencoder import kl_to_standard_normal

DEFAULT_OPTIMIZER = partial(torch.optim.AdamW, lr=1e-3)


class AutoencoderModule(L.LightningModule):
    def __init__(self, autoencoder: nn.Module, kl_weight: float = 1e-4,
                 optimizer: Callable[..., torch.optim.Optimizer] = DEFAULT_OPTIMIZER):
        super().__init__()
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
        self.autoencoder = autoencoder
        self.kl_weight = float(kl_weight)
        self.optimizer_factory = optimizer
        # the resolved stage config, stored in checkpoints so a checkpoint rebuilds its model
        self.run_config: dict | None = None

    def losses(self, x: torch.Tensor, sample: bool = True) -> dict:
        x_hat, mean, logvar = self.autoencoder(x, sample=sample)
        recon = (x_hat - x).pow(2).flatten(1).mean(1)
        kl = kl_to_standard_normal(mean, logvar) / x[0].numel()
        return {"loss": (recon + self.kl_weight * kl).mean(), "recon_mse": recon.mean(),
                "kl": kl.mean(), "mean": mean, "logvar": logvar}

    def training_step(self, batch, batch_idx):
        out = self.losses(batch[0])
        self.log("train/loss", out["loss"], prog_bar=True, on_step=True, on_epoch=False)
        self.log_dict({"train/recon_mse": out["recon_mse"], "train/kl": out["kl"]},
                      on_step=True, on_epoch=False)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        x = batch[0]
        out = self.losses(x, sample=False)
        n = x.shape[0]
        self.log("val/recon_mse", out["recon_mse"], prog_bar=True, on_epoch=True, batch_size=n)
        self.log("val/kl", out["kl"], on_epoch=True, batch_size=n)
        # the latents the diffusion stage will see, before any scaling
        self.log("val/latent_std", out["mean"].std(), on_epoch=True, batch_size=n)
        self.log("val/posterior_std", (0.5 * out["logvar"]).exp().mean(), on_epoch=True, batch_size=n)
        return out["loss"]

    def configure_optimizers(self):
        return self.optimizer_factory(self.autoencoder.parameters())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["diffusion_lab_config"] = self.run_config
        checkpoint["diffusion_lab_autoencoder"] = {
            "class": type(self.autoencoder).__name__,
            "latent_shape": list(self.autoencoder.latent_shape()),
        }
