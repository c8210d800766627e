"""A KL-regularised convolutional autoencoder (Rombach et al. 2022, "High-resolution image
synthesis with latent diffusion models", the Stable Diffusion VAE, at the scale of 28x28 digits).

Encoder E: x (B, C, H, W) -> (mean, logvar) (B, z, H/f, W/f), f = 2^(len(channels) - 1);
decoder D: z -> x_hat. The posterior is q(z | x) = N(mean, diag(exp(logvar))). Images whose side
is not a multiple of f, or smaller than ``pad_to``, are padded with the background value -1 before
encoding and cropped back after decoding (28 -> 32 -> 8x8 latents for f = 4, pad_to = 32: a side
that a patch-2 DiT and a two-level U-Net both take).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pad_center(x: Tensor, side: int) -> Tensor:
    """Pad square images (B, C, H, H) to (B, C, side, side) with the background value -1."""
    p = side - x.shape[-1]
    return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), value=-1.0) if p > 0 else x


def crop_center(x: Tensor, side: int) -> Tensor:
    """The central side x side window of square images (the inverse of ``pad_center``)."""
    p = (x.shape[-1] - side) // 2
    return x[..., p: p + side, p: p + side] if p > 0 else x


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))), with a 1x1 skip when the width changes."""

    def __init__(self, cin: int, cout: int, groups: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(min(groups, cin), cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(min(groups, cout), cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


class KLAutoencoder(nn.Module):
    """``encode(x) -> (mean, logvar)``, ``decode(z) -> x_hat``; images in [-1, 1].

    Args:
        in_channels: image channels.
        latent_channels: z, the latent's channels.
        channels: widths of the resolution levels; each level after the first halves the side.
        image_size: side of the images it is trained on (for ``latent_shape`` and padding).
        pad_to: pad images to at least this side before encoding (None: the next multiple of f).
    """

    def __init__(self, in_channels: int = 1, latent_channels: int = 4,
                 channels: tuple[int, ...] = (32, 64, 64), image_size: int = 28,
                 pad_to: int | None = None):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1 or latent_channels < 1 or in_channels < 1:
            raise ValueError(f"KLAutoencoder: channels {channels}, latent_channels "
                             f"{latent_channels} and in_channels {in_channels} must be >= 1")
        self.in_channels, self.latent_channels, self.image_size = in_channels, latent_channels, image_size
        self.factor = 2 ** (len(channels) - 1)
        side = max(image_size, int(pad_to or 0))
        self.padded_size = math.ceil(side / self.factor) * self.factor
        enc = [nn.Conv2d(in_channels, channels[0], 3, padding=1), ResBlock(channels[0], channels[0])]
        for cin, cout in itertools.pairwise(channels):
            enc += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), ResBlock(cout, cout)]
        enc += [nn.GroupNorm(min(8, channels[-1]), channels[-1]), nn.SiLU(),
                nn.Conv2d(channels[-1], 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1), ResBlock(channels[-1], channels[-1])]
        for cin, cout in itertools.pairwise(channels[::-1]):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                    ResBlock(cout, cout)]
        dec += [nn.GroupNorm(min(8, channels[0]), channels[0]), nn.SiLU(),
                nn.Conv2d(channels[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def latent_shape(self, image_shape: tuple[int, ...] | None = None) -> tuple[int, int, int]:
        """(z, H', W') of the latent of an image shaped (C, H, W) (default: the trained size)."""
        del image_shape  # one image size per autoencoder: the one it is built for
        side = self.padded_size // self.factor
        return (self.latent_channels, side, side)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters (mean, logvar) of q(z | x); logvar clamped to [-30, 20]."""
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"KLAutoencoder: built for {self.image_size}x{self.image_size} "
                             f"images, got {tuple(x.shape[-2:])}")
        x = pad_center(x, self.padded_size)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """x_hat = D(z), cropped to ``image_size`` (the padded border removed)."""
        return crop_center(self.decoder(z), self.image_size)

    def forward(self, x: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """(x_hat, mean, logvar); with ``sample`` z = mean + exp(logvar / 2) eps, else z = mean."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
        return self.decode(z), mean, logvar


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions:
    1/2 sum(mean^2 + exp(logvar) - 1 - logvar)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)
