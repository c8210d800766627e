"""The data set encoded once and kept on disk, keyed by the autoencoder's weights.

``<cache_dir>/latents/<dataset>-<identity>-<n>.pt`` holds the posterior parameters of every
image (``mean``, ``logvar``: (N, C, h, w) float32), written atomically; a file for other weights,
another data set size or another image count is another key, so a cache is never reused
for the wrong autoencoder. Loaded with ``weights_only`` (tensors only).
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffusion_lab.tasks.io import CheckpointError, atomic_torch_save, load_checkpoint_file
from diffusion_lab.utils.progress import progress_bar


@torch.no_grad()
def encode_images(autoencoder, x: torch.Tensor, batch_size: int = 256,
                  progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) of q(z|x) for every image, in batches, on the autoencoder's device."""
    device = next(autoencoder.parameters()).device
    means, logvars = [], []
    batches = range(0, len(x), batch_size)
    with progress_bar(progress, len(batches)) as advance:
        for start in batches:
            m, lv = autoencoder.encode(x[start:start + batch_size].to(device))
            means.append(m.float().cpu())
            logvars.append(lv.float().cpu())
            advance()
    return torch.cat(means), torch.cat(logvars)


def cache_path(cache_dir, dataset_name: str, identity: str, count: int) -> Path:
    return Path(cache_dir) / "latents" / f"{dataset_name}-{identity}-{count}.pt"


def cached_latents(autoencoder, identity: str, x: torch.Tensor, *, cache_dir, dataset_name: str,
                   batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, Path]:
    """(mean, logvar, file) of the images ``x`` under ``autoencoder``: read from the cache when
    this key was encoded before, else encoded now and written."""
    path = cache_path(cache_dir, dataset_name, identity, len(x))
    if path.is_file():
        try:
            stored = load_checkpoint_file(path)
            if stored.get("identity") == identity and len(stored["mean"]) == len(x):
                return stored["mean"], stored["logvar"], path
        except (CheckpointError, KeyError):
            pass  # unreadable or foreign: encode again and replace it
    mean, logvar = encode_images(autoencoder, x, batch_size,
                                 progress=f"encoding {dataset_name} ({len(x)} images)")
    atomic_torch_save({"identity": identity, "mean": mean, "logvar": logvar}, path)
    return mean, logvar, path
