"""diffusers' ``AutoencoderKL`` (the Stable Diffusion / SDXL VAE) read from a local folder, behind
the project's autoencoder interface: ``encode(x) -> (mean, logvar)``, ``decode(z) -> x``.

A folder written by ``AutoencoderKL.save_pretrained`` (``config.json`` and the weights, as in the
``vae/`` folder of a downloaded SD checkpoint) is used unchanged; nothing is downloaded. Grey
images are repeated to the VAE's RGB channels and decoded back to their mean; images are padded
with -1 to a side the VAE's downsampling factor divides (``pad_to`` for a larger side).
The folder's own ``scaling_factor`` is not used: the diffusion stage measures the scale of the
latents of its own data (``diffusion_lab.latent.scale``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from diffusion_lab.autoencoder.kl_autoencoder import crop_center, pad_center


class PretrainedAutoencoderKL(nn.Module):
    def __init__(self, path: str, image_size: int = 28, image_channels: int = 1,
                 pad_to: int | None = None):
        super().__init__()
        from diffusers import AutoencoderKL  # the `bench` extra; only this option needs it

        self.vae = AutoencoderKL.from_pretrained(str(path))
        config = self.vae.config
        self.path = str(path)
        self.image_size, self.in_channels = int(image_size), int(image_channels)
        self.latent_channels = int(config.latent_channels)
        self.factor = 2 ** (len(config.block_out_channels) - 1)
        self.vae_channels = int(config.in_channels)
        if self.in_channels not in (1, self.vae_channels):
            raise ValueError(f"the AutoencoderKL in {path} takes {self.vae_channels}-channel "
                             f"images, the data has {self.in_channels}")
        side = max(self.image_size, int(pad_to or 0))
        self.padded_size = math.ceil(side / self.factor) * self.factor

    def latent_shape(self, image_shape=None) -> tuple[int, int, int]:
        side = self.padded_size // self.factor
        return (self.latent_channels, side, side)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of the VAE's diagonal Gaussian posterior."""
        x = pad_center(x, self.padded_size)
        if x.shape[1] != self.vae_channels:
            x = x.expand(-1, self.vae_channels, -1, -1)
        posterior = self.vae.encode(x).latent_dist
        return posterior.mean, posterior.logvar

    def decode(self, z: Tensor) -> Tensor:
        x = crop_center(self.vae.decode(z).sample, self.image_size)
        return x.mean(1, keepdim=True) if self.in_channels == 1 and x.shape[1] != 1 else x

    def forward(self, x: Tensor, sample: bool = True):
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
        return self.decode(z), mean, logvar
