"""Many samples from a DiffusionModule in batches, reproducible whatever the batch size."""

from __future__ import annotations

import torch


def generate(module, sampler, *, labels, num_samples, seed, batch_size, guidance_scale, use_ema):
    """All samples in batches; sample i always uses the noise of (seed, i)."""
    total = labels.shape[0] if labels is not None else num_samples
    out = []
    for start in range(0, total, batch_size):
        idx = list(range(start, min(total, start + batch_size)))
        out.append(
            module.sample(
                len(idx),
                labels=None if labels is None else labels[idx],
                sampler=sampler,
                guidance_scale=guidance_scale,
                seed=seed,
                indices=idx,
                use_ema=use_ema,
            ).cpu()
        )
    return torch.cat(out)
