"""The autoencoder stage's dashboard: input / reconstruction grids of fixed held-out images,
their reconstruction error and the latents' statistics, every ``every_n_steps`` and at the end.

Logged (rank 0) through ``loggers.media``: ``autoencoder/reconstructions`` (odd rows: inputs,
even rows: reconstructions from the posterior mean), scalars ``autoencoder/recon_mse`` (on
``num_images`` held-out images), ``autoencoder/latent_std_c<k>`` and ``latent_mean_c<k>`` per
latent channel, ``autoencoder/posterior_std``.
"""

from __future__ import annotations

import torch

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.loggers.media import log_image, log_scalars
from diffusion_lab.utils.images import make_grid


@torch.no_grad()
def reconstruction_report(autoencoder, x: torch.Tensor, per_row: int = 8) -> tuple:
    """(grid image, scalars) for images ``x``: rows alternate inputs and reconstructions."""
    mean, logvar = autoencoder.encode(x)
    x_hat = autoencoder.decode(mean).clamp(-1, 1)
    rows = []
    for start in range(0, len(x), per_row):
        rows += [x[start:start + per_row], x_hat[start:start + per_row]]
    image = make_grid(torch.cat(rows).cpu(), nrow=per_row, upscale=max(1, 32 // x.shape[-1]))
    scalars = {"autoencoder/recon_mse": float((x_hat - x).pow(2).mean()),
               "autoencoder/posterior_std": float((0.5 * logvar).exp().mean())}
    for k in range(mean.shape[1]):
        scalars[f"autoencoder/latent_std_c{k}"] = float(mean[:, k].std())
        scalars[f"autoencoder/latent_mean_c{k}"] = float(mean[:, k].mean())
    return image, scalars


class Reconstructions(PeriodicMetric):
    def __init__(self, every_n_steps: int = 500, num_images: int = 32, seed: int = 0):
        if every_n_steps < 1 or num_images < 1:
            raise ValueError("every_n_steps and num_images must be >= 1")
        super().__init__(every_n_steps, at_train_end=True, min_step=0)
        self.num_images, self.seed = num_images, seed

    def make(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        split = "val" if dm.val_set is not None else "train"
        n = min(self.num_images, len(dm.val_set if split == "val" else dm.train_set))
        x = dm.real_batch(n, split=split, seed=self.seed).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        try:
            image, scalars = reconstruction_report(pl_module.autoencoder, x)
        finally:
            pl_module.train(was_training)
        step = trainer.global_step
        path = log_image(trainer, "autoencoder/reconstructions", image, step,
                         caption=f"{split} images (odd rows) and reconstructions (even rows), step {step}")
        log_scalars(trainer, scalars, step)
        self.last = {"step": step, "path": path, **scalars}
