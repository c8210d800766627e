"""A trained diffusion-lab model driven by diffusers' schedulers (case 3 of the comparison).

diffusers asks an eps-model for eps(x_vp, t). The adapter answers with the project's own
denoiser (EMA weights, guidance, x0 clipping, exactly what diffusion-lab's samplers use):
x = x_vp / alpha at the noise level the scheduler is at, eps = (x - D(x, sigma, cond)) / sigma.
x_T comes from the same per-sample noise as ``SamplerSpec.sample`` (stream 0 of
PerSampleNoise(seed, i)), so both libraries start every sample from the same point.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from diffusion_lab.bench import diffusers_schedulers as dfs
from diffusion_lab.bench.diffusers_grid import DiffusersRow
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import INITIAL_NOISE_STREAM, STEP_NOISE_STREAM
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser


class DenoiserAsEps:
    """``eps(x, sigma)`` of a sigma-space denoiser with fixed ``cond``, in the denoiser's dtype."""

    def __init__(self, denoiser: Denoiser, cond: Tensor | None, dtype=torch.float32) -> None:
        self.denoiser, self.cond, self.dtype = denoiser, cond, dtype

    def eps(self, x: Tensor, sigma: Tensor) -> Tensor:
        x = x.to(self.dtype)
        s = torch.full((x.shape[0],), float(sigma), dtype=torch.float64)
        d = self.denoiser(x, s, self.cond).to(self.dtype)
        return (x - d) / float(sigma)


def run_scheduler(scheduler, denoiser: Denoiser, schedule: NoiseSchedule, steps: int, z: Tensor,
                  cond: Tensor | None, step_noise: PerSampleNoise) -> Tensor:
    """diffusers' sampling loop of ``scheduler`` from unit noise ``z`` with ``denoiser`` as its model;
    the scheduler's own noise draws come from ``step_noise``."""
    model = DenoiserAsEps(denoiser, cond)
    out = dfs.run(scheduler, model, schedule, steps, z,
                  lambda s: step_noise(torch.empty(s, dtype=torch.float64)))
    return out.float()


@torch.no_grad()
def diffusers_sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    row: DiffusersRow,
    cfg: dict,
    steps: int,
    shape: Sequence[int],
    *,
    cond: Tensor | None = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> Tensor:
    """Samples of diffusers' ``row`` scheduler (options ``cfg``) with ``denoiser`` as its model."""
    shape = tuple(int(s) for s in shape)
    indices = range(shape[0]) if indices is None else indices
    z = PerSampleNoise(seed, indices, stream=INITIAL_NOISE_STREAM).sample(shape, "cpu", torch.float32)
    step_noise = PerSampleNoise(seed, indices, stream=STEP_NOISE_STREAM)
    return run_scheduler(dfs.build(row, cfg, schedule), denoiser, schedule, steps, z, cond,
                         step_noise)
