"""diffusers' schedulers driven by an exact predictor: Gaussian data (exact output law) and a
Gaussian mixture (samples), for the sampler comparison (:mod:`diffusion_lab.bench.sampler_table`).

diffusers gets the same betas (``trained_betas``) and, at every call, the exact eps* at the noise
level the scheduler itself is at (its own ``sigmas`` where it keeps one per timestep, else
sigma(t) by log-linear interpolation, the inverse of its ``_sigma_to_t``): the predictor never
costs it accuracy. Deterministic scheduler steps are affine in x_T per dimension on Gaussian data,
so rows x_T = 0 and x_T = 1 give the exact output law; stochastic ones (SDE, ancestral, DDPM,
SA-Solver) draw their noise through ``randn_tensor``, replaced here by unit noise in extra rows
(as :func:`diffusion_lab.oracle.affine_output_law` does for ours), so their law is exact too.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys

import torch

from diffusion_lab.bench.diffusers_grid import DiffusersRow
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.schedules import NoiseSchedule

#: schedulers whose ``sigmas`` are not one per entry of ``timesteps``
NOT_ALIGNED = {"KDPM2DiscreteScheduler", "DDIMScheduler", "DDPMScheduler", "PNDMScheduler"}


def _diffusers():
    try:
        import diffusers
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ImportError("diffusers is not installed: pip install -e '.[bench]'") from e
    return diffusers


@functools.lru_cache(maxsize=64)
def _base(cls_name: str, betas: tuple[float, ...]):
    cls = getattr(_diffusers(), cls_name)
    return cls(num_train_timesteps=len(betas), trained_betas=list(betas),
               prediction_type="epsilon")


def build(row: DiffusersRow, cfg: dict, schedule: NoiseSchedule):
    """The scheduler of ``row`` with options ``cfg``, on ``schedule``'s betas."""
    base = _base(row.cls, tuple(schedule.betas.tolist()))
    return type(base).from_config(base.config, **row.fixed, **cfg)


def nfe_of(scheduler, steps: int) -> int:
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def _sigma_lookup(scheduler, schedule: NoiseSchedule):
    """t -> the sigma the scheduler is at when it asks for the model at t."""
    table = {}
    if type(scheduler).__name__ not in NOT_ALIGNED and hasattr(scheduler, "sigmas"):
        sig = torch.as_tensor(scheduler.sigmas).double()
        if len(sig) >= len(scheduler.timesteps):
            table = {float(t): float(s) for t, s in zip(scheduler.timesteps, sig, strict=False)}

    def sigma(t) -> float:
        t = float(t)
        return table[t] if t in table else float(schedule.t_to_sigma(torch.tensor(t)))

    return sigma


@contextlib.contextmanager
def _noise(scheduler, draw):
    """Replace ``randn_tensor`` in the scheduler's module by ``draw(shape) -> Tensor``."""
    module = sys.modules[type(scheduler).__module__]
    original = getattr(module, "randn_tensor", None)
    if original is not None:
        module.randn_tensor = lambda shape, *a, **k: draw(tuple(shape))
    try:
        yield
    finally:
        if original is not None:
            module.randn_tensor = original


@torch.no_grad()
def run(scheduler, oracle, schedule: NoiseSchedule, steps: int, z: torch.Tensor, draw) -> torch.Tensor:
    """diffusers' sampling loop from x_T = init_noise_sigma * z with the exact eps*."""
    scheduler.set_timesteps(steps)
    sigma_at = _sigma_lookup(scheduler, schedule)
    x = z.double() * float(scheduler.init_noise_sigma)
    with _noise(scheduler, draw):
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(x, t)
            sigma = sigma_at(t)
            alpha = 1.0 / math.sqrt(1.0 + sigma**2)
            eps = oracle.eps(x_in.double() / alpha, torch.tensor(sigma)).to(x_in.dtype)
            x = scheduler.step(eps, t, x).prev_sample
    return x


class _UnitDraws:
    def __init__(self, offset: int | None) -> None:
        self.offset, self.calls = offset, 0

    def __call__(self, shape) -> torch.Tensor:
        out = torch.zeros(shape, dtype=torch.float64)
        if self.offset is not None:
            out[self.offset + self.calls] = 1.0
        self.calls += 1
        return out


def diffusers_output_law(scheduler, oracle: GaussianOracle, schedule: NoiseSchedule,
                         steps: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mean, std, NFE) of ``scheduler``'s output on Gaussian data, exactly."""
    dim = oracle.dim
    z = torch.zeros(2, dim, dtype=torch.float64)
    z[1] = 1.0
    probe = _UnitDraws(None)
    out = run(scheduler, oracle, schedule, steps, z, probe)
    mean, var = out[0], (out[1] - out[0]) ** 2
    if probe.calls:
        z = torch.cat([z, torch.zeros(probe.calls, dim, dtype=torch.float64)])
        out = run(scheduler, oracle, schedule, steps, z, _UnitDraws(2))
        var = var + ((out[2:] - out[0]) ** 2).sum(0)
    return mean, var.sqrt(), len(scheduler.timesteps)


def diffusers_samples(scheduler, mixture, schedule: NoiseSchedule, steps: int, z: torch.Tensor,
                      seed: int) -> torch.Tensor:
    """Samples of ``scheduler`` from unit noise ``z`` (stochastic steps: seeded Gaussian draws)."""
    g = torch.Generator().manual_seed(seed)
    return run(scheduler, mixture, schedule, steps, z,
               lambda shape: torch.randn(shape, generator=g, dtype=torch.float64))
