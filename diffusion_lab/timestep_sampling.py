"""Which timesteps training draws: ``sampler(batch, schedule, device, generator) -> t`` (B,).

t is in the schedule's index units, [0, T - 1]: integers (long) for the VP schedules, floats
(float64) for a continuous-time path (``schedule.continuous_time``, the linear flow path).
A draw u in [0, 1] maps to t = u (T - 1), rounded to the nearest integer on a discrete schedule.

- :class:`UniformIntegerTimesteps`: t ~ U{0, .., T-1} (DDPM; the VP models' default).
- :class:`UniformTimesteps`: u ~ U(0, 1) (flow matching, Lipman et al. 2023).
- :class:`LogitNormalTimesteps`: u = sigmoid(n), n ~ N(loc, scale^2) (Esser et al. 2024, SD3:
  more draws at intermediate t, loc > 0 shifts them towards noise).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LogitNormalTimesteps", "UniformIntegerTimesteps", "UniformTimesteps"]


def _draw_device(generator: torch.Generator | None, device) -> torch.device | str:
    return generator.device if generator is not None else device


def _to_schedule_time(u: Tensor, schedule, device) -> Tensor:
    t = u.to(torch.float64) * (schedule.num_steps - 1)
    if not getattr(schedule, "continuous_time", False):
        t = t.round().long()
    return t.to(device)


class UniformIntegerTimesteps:
    """t ~ U{0, .., T-1}, long (the DDPM draw, on the generator's device then moved)."""

    def __call__(self, batch: int, schedule, device="cpu", generator=None) -> Tensor:
        t = torch.randint(0, schedule.num_steps, (batch,), generator=generator,
                          device=_draw_device(generator, device))
        return t.to(device)

    def __repr__(self) -> str:
        return "UniformIntegerTimesteps()"


class UniformTimesteps:
    """u ~ U(0, 1), t = u (T - 1): continuous on a continuous-time path."""

    def __call__(self, batch: int, schedule, device="cpu", generator=None) -> Tensor:
        u = torch.rand((batch,), generator=generator, device=_draw_device(generator, device),
                       dtype=torch.float64)
        return _to_schedule_time(u, schedule, device)

    def __repr__(self) -> str:
        return "UniformTimesteps()"


class LogitNormalTimesteps:
    """u = sigmoid(loc + scale n), n ~ N(0, 1); density
    p(u) = exp(-(logit u - loc)^2 / (2 scale^2)) / (scale sqrt(2 pi) u (1 - u))."""

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        if not math.isfinite(loc):
            raise ValueError(f"logit-normal loc must be a finite number, got {loc}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"logit-normal scale must be > 0, got {scale}")
        self.loc, self.scale = float(loc), float(scale)

    def __call__(self, batch: int, schedule, device="cpu", generator=None) -> Tensor:
        n = torch.randn((batch,), generator=generator, device=_draw_device(generator, device),
                        dtype=torch.float64)
        return _to_schedule_time(torch.sigmoid(self.loc + self.scale * n), schedule, device)

    def __repr__(self) -> str:
        return f"LogitNormalTimesteps(loc={self.loc}, scale={self.scale})"
