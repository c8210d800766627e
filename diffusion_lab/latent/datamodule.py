"""``LatentDataModule``: the images of a :class:`DiffusionDataModule`, encoded once (``cache``),
served as scaled latents z' = (z - shift) * scale with the same split, labels and resumable
order, so any backbone trains on them unchanged.

Training batches draw z ~ q(z|x) = N(m, s^2) afresh each time (``sample_posterior``; the noise
comes from the global generator, saved and restored with the training random stream), validation
and ``real_batch`` use the posterior means. ``pixel_data`` is the image datamodule, which the
sample judge (classifier accuracy, FID) scores decoded samples against.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.data.datamodule import DiffusionDataModule
from diffusion_lab.latent.cache import cached_latents
from diffusion_lab.latent.codec import LatentCodec
from diffusion_lab.latent.scale import check_scaled_std, measure_scale, scaled_std

log = logging.getLogger(__name__)


class LatentArrayDataset(ArrayDataset):
    """Scaled posterior means ``x`` and stds ``std``; batches are x + std * eps (or x)."""

    def __init__(self, x: Tensor, std: Tensor, y: Tensor, *, num_classes: int, class_names,
                 name: str, sample_posterior: bool = True):
        super().__init__(x, y, num_classes=num_classes, class_names=class_names, name=name,
                         value_range=None)
        self.std = std.to(torch.float32)
        self.sample_posterior = sample_posterior

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.x[idx]
        if self.sample_posterior:
            x = x + self.std[idx] * torch.randn_like(x)
        return x, self.y[idx]

    def subset(self, indices) -> LatentArrayDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        new = LatentArrayDataset.__new__(LatentArrayDataset)
        new.x, new.y, new.std = self.x[idx], self.y[idx], self.std[idx]
        new.num_classes, new.class_names, new.name = self.num_classes, self.class_names, self.name
        new.sample_posterior = self.sample_posterior
        return new


class LatentDataModule(DiffusionDataModule):
    """Args:
        pixels: the image datamodule (its split seed, fraction and batch size are kept).
        autoencoder: a loaded autoencoder and its identity, ``(model, identity)``.
        source: where the autoencoder was read from (stored in checkpoints).
        cache_dir: where encoded data sets are kept.
        per_channel, sample_posterior: see ``latent/scale.py`` and above.
        scale: a given scale instead of the measured one (then shift = 0); warned when it
            leaves the latents' std far from 1.
        options: how the autoencoder was opened (a diffusers folder's image size and padding).
    """

    def __init__(self, pixels: DiffusionDataModule, autoencoder: tuple, source: str, *,
                 cache_dir=".cache", per_channel: bool = True, sample_posterior: bool = True,
                 scale: float | None = None, encode_batch_size: int = 256,
                 options: dict | None = None):
        super().__init__(self._encode, batch_size=pixels.batch_size, val_fraction=pixels.val_fraction,
                         num_workers=pixels.num_workers, seed=pixels.seed, drop_last=pixels.drop_last)
        self.pixel_data = pixels
        self.model, self.identity = autoencoder
        self.source, self.options = str(source), dict(options or {})
        self.cache_dir, self.per_channel = cache_dir, per_channel
        self.sample_posterior, self.given_scale = sample_posterior, scale
        self.encode_batch_size = encode_batch_size
        self.codec: LatentCodec | None = None
        self.scaled_std: float | None = None  # of the training latents, logged at the start
        self.cache_file = None

    def _encode(self) -> LatentArrayDataset:
        pixels = self.pixel_data
        pixels.setup("fit")
        full = pixels._load()
        mean, logvar, self.cache_file = cached_latents(
            self.model, self.identity, full.x, cache_dir=self.cache_dir, dataset_name=full.name,
            batch_size=self.encode_batch_size)
        train = pixels.train_indices
        if self.given_scale is None:
            shift, scale = measure_scale(mean[train], logvar[train], self.per_channel)
        else:
            shift, scale = torch.zeros(1), torch.tensor([float(self.given_scale)])
        s, k = shift.view(1, -1, 1, 1), scale.view(1, -1, 1, 1)
        bound = float(((mean[train] - s) * k).abs().max())
        self.codec = LatentCodec(self.model, self.identity, shift, scale, self.source, self.options,
                                 bound)
        self.scaled_std = scaled_std(mean[train], logvar[train], shift, scale)
        log.info("latents of %s: shape %s, scaled std %.3f (scale %s)", full.name,
                 tuple(mean.shape[1:]), self.scaled_std, [round(float(s), 4) for s in scale])
        check_scaled_std(self.scaled_std)
        return LatentArrayDataset((mean - s) * k, (0.5 * logvar).exp() * k, full.y,
                                  num_classes=full.num_classes, class_names=full.class_names,
                                  name=full.name, sample_posterior=self.sample_posterior)

    def val_dataloader(self):
        if self.val_set is not None:
            self.val_set.sample_posterior = False  # validation loss on the posterior means
        return super().val_dataloader()
