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


def process_group_size() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def generate(module, sampler, *, labels, num_samples, seed, batch_size, guidance_scale, use_ema,
             distributed: bool = False):
    """All samples, in batches; with ``distributed`` every rank of the process group must call
    it, draws its share and receives the full, index-ordered result."""
    total = labels.shape[0] if labels is not None else num_samples
    rank, world = process_group_size() if distributed else (0, 1)
    mine = list(range(rank, total, world))
    out = []
    for start in range(0, len(mine), batch_size):
        idx = mine[start:start + batch_size]
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
    local = torch.cat(out) if out else torch.empty(0, *module.sample_shape)
    if world == 1:
        return local
    shares: list = [None] * world
    dist.all_gather_object(shares, local)
    full = torch.empty(total, *local.shape[1:], dtype=local.dtype)
    for r, share in enumerate(shares):
        full[r::world] = share
    return full
