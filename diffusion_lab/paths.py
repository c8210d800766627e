"""Interpolant paths x_t = alpha(t) x0 + sigma(t) eps beyond the VP family (SiT's interpolants).

Every path maps to the one sigma-space view the samplers use: dividing by alpha(t),

    x_sigma = x_t / alpha(t) = x0 + s eps,    s = sigma(t) / alpha(t),

so a path is a :class:`~diffusion_lab.schedules.NoiseSchedule` whose ``sigmas`` table is s on its
training grid, plus :meth:`sigma_space_coefficients`, which says how the network input x_t is
recovered from x_sigma (x_t = alpha x_sigma) and what (alpha, sigma) the prediction conversions
use. The VP schedules have alpha^2 + sigma^2 = 1; the linear path here has alpha + sigma = 1.

Linear path (rectified flow, Liu et al. 2023; flow matching with the OT path, Lipman et al.
2023; Stable Diffusion 3):

    x_t = (1 - t) x0 + t eps,   velocity u = dx_t/dt = eps - x0,
    s = t / (1 - t),   t = s / (1 + s),   x_sigma = x_t / (1 - t).

Time runs over [t_min, t_max] inside (0, 1) (s = 0 and s = inf have no log-sigma), discretised
on T levels t_i = t_min + (t_max - t_min) i / (T - 1); the "timestep" every other part of the
framework passes around (training draws, backbone input, ``sigma_to_t``) is the continuous index
i in [0, T - 1], so the backbone sees float timesteps in [0, T) as for the VP models.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffusion_lab.schedules import NoiseSchedule

__all__ = ["LinearFlowPath"]


class LinearFlowPath(NoiseSchedule):
    """x_t = (1 - t) x0 + t eps on t in [t_min, t_max], indexed by a continuous timestep in
    [0, T - 1]. Its VP-equivalent betas (ab_i = 1 / (1 + s_i^2)) make it usable wherever a
    NoiseSchedule is (spacings, samplers, dashboards); its own coefficients are exact."""

    path_kind = "linear"
    continuous_time = True

    def __init__(self, num_steps: int = 1000, t_min: float = 1e-3, t_max: float = 0.999) -> None:
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 2:
            raise ValueError(f"num_steps must be an integer >= 2, got {num_steps}")
        if not 0.0 < t_min < t_max < 1.0:
            raise ValueError(f"need 0 < t_min < t_max < 1, got t_min={t_min}, t_max={t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)
        times = torch.linspace(self.t_min, self.t_max, int(num_steps), dtype=torch.float64)
        sigmas = times / (1.0 - times)
        ab = 1.0 / (1.0 + sigmas**2)
        super().__init__(1.0 - ab / torch.cat([ab.new_ones(1), ab[:-1]]))
        self.sigmas = sigmas  # exact, not re-derived through the cumulative product
        self._log_sigmas = torch.log(sigmas)

    def time(self, t: Tensor) -> Tensor:
        """Path time t_c = t_min + (t_max - t_min) t / (T - 1) of a (possibly fractional) index t."""
        t = torch.as_tensor(t).to(torch.float64)
        return self.t_min + (self.t_max - self.t_min) * t / (self.num_steps - 1)

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha, sigma) = (1 - t_c, t_c) in float64, shaped like ``t`` (integer or float)."""
        tc = self.time(t)
        return 1.0 - tc, tc

    def snr_at(self, t: Tensor) -> Tensor:
        """SNR = alpha^2 / sigma^2 = ((1 - t_c) / t_c)^2 = 1 / s^2."""
        alpha, sigma = self.coefficients(t)
        return (alpha / sigma) ** 2

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Exact inverse of the sigma mapping: t_c = s / (1 + s), as an index clamped to [0, T-1]."""
        s = torch.as_tensor(sigma).to(torch.float64)
        tc = s / (1.0 + s)
        index = (tc - self.t_min) / (self.t_max - self.t_min) * (self.num_steps - 1)
        return index.clamp(0.0, self.num_steps - 1)

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """s = t_c / (1 - t_c) at index t (clamped to [0, T-1])."""
        tc = self.time(torch.as_tensor(t).to(torch.float64).clamp(0, self.num_steps - 1))
        return tc / (1.0 - tc)

    @staticmethod
    def sigma_space_coefficients(sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha, sigma_path) = (1 / (1 + s), s / (1 + s)) = (1 - t, t) at sigma-space level s."""
        s = torch.as_tensor(sigma)
        return 1.0 / (1.0 + s), s / (1.0 + s)

    def __repr__(self) -> str:
        return f"LinearFlowPath(T={self.num_steps}, t_min={self.t_min:g}, t_max={self.t_max:g})"
