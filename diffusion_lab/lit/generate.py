"""Many samples from a DiffusionModule in batches, reproducible whatever the batch size and
the number of processes.

Sample i always starts from the noise of (seed, i) (``diffusion_lab.noise``). Under
``torch.distributed`` each rank draws the indices i = rank, rank + world, ... and the shares are
gathered back into index order, so 1 or N processes produce the same set of samples, in the
same order, and any metric computed from them does not depend on the process count.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from diffusion_lab.utils.progress import progress_bar


def process_group_size() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def generate(module, sampler, *, labels, num_samples, seed, batch_size, guidance_scale, use_ema,
             distributed: bool = False, progress: str | None = None):
    """All samples, in batches; with ``distributed`` every rank of the process group must call
    it, draws its share and receives the full, index-ordered result. ``progress``: the
    description of a progress bar over the sampler steps of all batches (rank 0), or None."""
    total = labels.shape[0] if labels is not None else num_samples
    rank, world = process_group_size() if distributed else (0, 1)
    mine = list(range(rank, total, world))
    spec = module.sampler_or_default(sampler)
    batches = range(0, len(mine), batch_size)
    out = []
    with progress_bar(progress if rank == 0 else None, len(batches) * spec.steps) as advance:
        for start in batches:
            idx = mine[start:start + batch_size]
            out.append(
                module.sample(
                    len(idx),
                    labels=None if labels is None else labels[idx],
                    sampler=spec,
                    guidance_scale=guidance_scale,
                    seed=seed,
                    indices=idx,
                    use_ema=use_ema,
                    callback=lambda info: advance(),
                ).cpu()
            )
    local = torch.cat(out) if out else torch.empty(0, *module.sample_shape)
    if world == 1:
        return local
    shares: list = [None] * world
    dist.all_gather_object(shares, local)
    full = torch.empty(total, *local.shape[1:], dtype=local.dtype)
    for r, share in enumerate(shares):
        full[r::world] = share
    return full
