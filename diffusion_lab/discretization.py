"""Sampling grids: which noise levels a sampler visits.

Every spacing is a callable ``spacing(schedule, num_steps) -> sigmas``: a float64 tensor of length
num_steps + 1, strictly descending, whose last entry is exactly 0. A sampler steps from sigmas[i] to
sigmas[i+1]; nobody recomputes a "previous timestep". Integer spacings pick training timesteps
(``timesteps(T, n)``, descending) and read ``schedule.sigmas`` there; continuous spacings place
sigmas directly between the schedule's sigma_min and sigma_max.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffusion_lab.schedules import NoiseSchedule

__all__ = [
    "KarrasSpacing",
    "LeadingSpacing",
    "LogSNRSpacing",
    "QuadraticSpacing",
    "UniformSpacing",
    "usable_sigma_max",
]


def _check_count(num_steps: int) -> int:
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    return int(num_steps)


def _with_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas.to(torch.float64), sigmas.new_zeros(1, dtype=torch.float64)])


class _IntegerSpacing:
    """Base of spacings over training timesteps: sigmas = schedule.sigmas[timesteps(T, n)] + [0]."""

    def timesteps(self, num_train_steps: int, num_steps: int) -> Tensor:
        raise NotImplementedError

    def _checked_timesteps(self, num_train_steps: int, num_steps: int) -> Tensor:
        n = _check_count(num_steps)
        if n > num_train_steps:
            raise ValueError(
                f"{type(self).__name__}: num_steps={n} exceeds the "
                f"{num_train_steps} training timesteps"
            )
        return n

    def __call__(self, schedule: NoiseSchedule, num_steps: int) -> Tensor:
        ts = self.timesteps(schedule.num_steps, num_steps)
        return _with_zero(schedule.sigmas[ts])

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UniformSpacing(_IntegerSpacing):
    """ "Trailing" spacing (Lin et al. 2023, Table 2): t_i = round(T - i T/n) - 1, i = 0..n-1.

    Always starts at the last training step T-1; the smallest timestep is round(T/n) - 1.
    """

    def timesteps(self, num_train_steps: int, num_steps: int) -> Tensor:
        n = self._checked_timesteps(num_train_steps, num_steps)
        i = torch.arange(n, dtype=torch.float64)
        return (torch.round(num_train_steps - i * (num_train_steps / n)) - 1).long()


class LeadingSpacing(_IntegerSpacing):
    """ "Leading" spacing (DDIM / Stable Diffusion): t = arange(n) * (T // n) + offset, descending.

    Never reaches T-1 when T/n is not an integer (or offset = 0): the first step is not pure noise.
    One step (n = 1) is the single level T-1.
    """

    def __init__(self, offset: int = 0) -> None:
        if int(offset) != offset or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        self.offset = int(offset)

    def timesteps(self, num_train_steps: int, num_steps: int) -> Tensor:
        n = self._checked_timesteps(num_train_steps, num_steps)
        if n == 1:  # arange(1) would be t = 0: one step from almost clean data returns the noise
            return torch.tensor([num_train_steps - 1])
        ts = torch.arange(n, dtype=torch.int64) * (num_train_steps // n) + self.offset
        if ts[-1] > num_train_steps - 1:
            raise ValueError(
                f"LeadingSpacing: offset={self.offset} pushes timestep {int(ts[-1])} past T-1"
            )
        return ts.flip(0)

    def __repr__(self) -> str:
        return f"LeadingSpacing(offset={self.offset})"


class QuadraticSpacing(_IntegerSpacing):
    """DDIM's CIFAR-10 grid (Song et al. 2021): t_i = floor((i sqrt(0.8 T) / (n-1))^2), descending.

    Where squares collide at small t (n - 1 > sqrt(0.8 T)), each timestep is raised to
    previous + 1 so the n timesteps stay distinct (DDIM's code would repeat steps instead).
    One step (n = 1) is the ramp's top, floor(fraction T).
    """

    def __init__(self, fraction: float = 0.8) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def timesteps(self, num_train_steps: int, num_steps: int) -> Tensor:
        n = self._checked_timesteps(num_train_steps, num_steps)
        top = math.sqrt(self.fraction * num_train_steps)
        if n == 1:  # linspace(0, top, 1) = [0] would start (and end) at clean data
            return torch.tensor([min(math.floor(top**2), num_train_steps - 1)])
        ts = (torch.linspace(0.0, top, n, dtype=torch.float64) ** 2).floor().long().tolist()
        for k in range(1, n):
            ts[k] = max(ts[k], ts[k - 1] + 1)
        return torch.tensor(ts, dtype=torch.int64).flip(0)

    def __repr__(self) -> str:
        return f"QuadraticSpacing(fraction={self.fraction})"


def usable_sigma_max(schedule: NoiseSchedule, max_jump: float = 1.0) -> float:
    """The top of the schedule's sigmas without its clipped tail: the largest sigma_t below which
    no training step multiplies sigma by more than e^max_jump.

    The cosine schedule clips its last beta at 0.999, so sigma jumps from ~642 at t = T-2 to
    ~20,300 at T-1 (log ratio 3.45; every other step < 0.7): a grid spread up to 20,300 spends a
    quarter of its levels (log-SNR) or half (Karras, rho = 7) on a region where D barely changes.
    Schedules without such a jump (linear) return sigma_max itself.
    """
    log_sigmas = torch.log(schedule.sigmas)
    top = schedule.num_steps - 1
    while top > 0 and (log_sigmas[top] - log_sigmas[top - 1]).item() > max_jump:
        top -= 1
    return schedule.sigmas[top].item()


class _ContinuousSpacing:
    """Base of spacings placing sigmas in [sigma_min, sigma_max] (default: the schedule's range).

    With ``skip_tail`` (default) and no explicit sigma_max, a schedule whose last steps jump
    (:func:`usable_sigma_max`, the cosine schedule) keeps sigma_max as the first level, where the
    prior is defined, and places the other n - 1 levels up to the usable top: one evaluation,
    not five (log-SNR, 20 steps) or nine (Karras), is spent in the tail.
    """

    def __init__(
        self, sigma_min: float | None = None, sigma_max: float | None = None, skip_tail: bool = True
    ) -> None:
        if sigma_min is not None and sigma_max is not None and not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if sigma_min is not None and sigma_min <= 0:
            raise ValueError(f"sigma_min must be > 0, got {sigma_min}")
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.skip_tail = bool(skip_tail)

    def _range(self, schedule: NoiseSchedule) -> tuple[float, float]:
        lo = schedule.sigma_min if self.sigma_min is None else float(self.sigma_min)
        hi = schedule.sigma_max if self.sigma_max is None else float(self.sigma_max)
        if not 0 < lo < hi:
            raise ValueError(f"{type(self).__name__}: empty sigma range [{lo}, {hi}]")
        return lo, hi

    def __call__(self, schedule: NoiseSchedule, num_steps: int) -> Tensor:
        n = _check_count(num_steps)
        lo, hi = self._range(schedule)
        usable = usable_sigma_max(schedule) if self.skip_tail and self.sigma_max is None else hi
        if usable < hi and n > 2 and lo < usable:
            return _with_zero(torch.cat([torch.tensor([hi], dtype=torch.float64),
                                         self._levels(n - 1, lo, usable)]))
        return _with_zero(self._levels(n, lo, hi))

    def _levels(self, n: int, lo: float, hi: float) -> Tensor:
        ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        sigmas = self._place(ramp, lo, hi)
        sigmas[0] = hi  # exact endpoints: sigma_max must map back to t = T-1 exactly
        if n > 1:
            sigmas[-1] = lo
        return sigmas

    def _place(self, ramp: Tensor, lo: float, hi: float) -> Tensor:
        raise NotImplementedError


class LogSNRSpacing(_ContinuousSpacing):
    """Uniform in log-SNR (= -2 log sigma):
    sigma_i = exp(log s_max + i/(n-1) (log s_min - log s_max))."""

    def _place(self, ramp: Tensor, lo: float, hi: float) -> Tensor:
        return torch.exp(math.log(hi) + ramp * (math.log(lo) - math.log(hi)))

    def __repr__(self) -> str:
        return (
            f"LogSNRSpacing(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, "
            f"skip_tail={self.skip_tail})"
        )


class KarrasSpacing(_ContinuousSpacing):
    """EDM eq. (5): sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho."""

    def __init__(
        self,
        rho: float = 7.0,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        skip_tail: bool = True,
    ) -> None:
        super().__init__(sigma_min, sigma_max, skip_tail)
        if rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        self.rho = float(rho)

    def _place(self, ramp: Tensor, lo: float, hi: float) -> Tensor:
        a, b = hi ** (1 / self.rho), lo ** (1 / self.rho)
        return (a + ramp * (b - a)) ** self.rho

    def __repr__(self) -> str:
        return (
            f"KarrasSpacing(rho={self.rho}, sigma_min={self.sigma_min}, "
            f"sigma_max={self.sigma_max}, skip_tail={self.skip_tail})"
        )
