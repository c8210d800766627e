"""Discrete variance-preserving noise schedules (DDPM notation) and their sigma-space view.

Forward process (Ho et al. 2020): q(x_t | x0) = N(sqrt(ab_t) x0, (1 - ab_t) I),
ab_t = prod_{s<=t} (1 - beta_s),
with t = 0 .. T-1 (0-indexed). Dividing by sqrt(ab_t) gives the variance-exploding view
x_t / sqrt(ab_t) = x0 + sigma_t * noise with sigma_t = sqrt((1 - ab_t) / ab_t), which samplers use.
All schedule arithmetic is float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffusion_lab.types import append_dims

__all__ = [
    "NoiseSchedule",
    "cosine_schedule",
    "linear_schedule",
    "rescale_zero_terminal_snr",
    "sigmoid_schedule",
]

#: ab used for sampling where ab_{T-1} = 0 (zero terminal SNR): sigma_max ~ 4096, as in diffusers.
ZERO_SNR_ALPHA_BAR = 2.0**-24


class NoiseSchedule:
    """A VP schedule given by its betas (float64, shape (T,), each in (0, 1]).

    ``alpha_bars`` is exact (ab_{T-1} = 0 under zero terminal SNR, used for training). ``sigmas`` is
    the
    sampling view sqrt((1 - ab)/ab): an exact zero ab is replaced by min(2**-24, ab_{T-2}/4), so
    sigma_max is finite (~4096) and the grid stays strictly ascending.
    Other interpolants (the linear flow path) are subclasses: see :mod:`diffusion_lab.paths`.
    """

    #: alpha^2 + sigma^2 = 1 (what v-prediction assumes); the linear flow path says "linear"
    path_kind = "vp"
    #: training timesteps are integers (a continuous-time path takes fractional ones too)
    continuous_time = False

    def __init__(self, betas: Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() < 2:
            raise ValueError(
                f"betas must be a 1-d tensor with at least 2 entries, got {tuple(betas.shape)}"
            )
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError(
                f"betas must lie in (0, 1], got range "
                f"[{betas.min().item():.3g}, {betas.max().item():.3g}]"
            )
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        if bool((self.alpha_bars[:-1] == 0).any()):
            raise ValueError("only the last step may have alpha_bar = 0 (beta = 1 before the end)")
        ab = self.alpha_bars.clone()
        if ab[-1] == 0:
            ab[-1] = min(ZERO_SNR_ALPHA_BAR, ab[-2].item() / 4)
        self.sigmas = torch.sqrt((1.0 - ab) / ab)
        self._log_sigmas = torch.log(self.sigmas)

    @property
    def num_steps(self) -> int:
        """T, the number of discrete training timesteps."""
        return self.betas.numel()

    @property
    def alpha_bars_prev(self) -> Tensor:
        """ab_{t-1} with the convention ab_{-1} = 1."""
        return torch.cat([self.alpha_bars.new_ones(1), self.alpha_bars[:-1]])

    @property
    def log_snr(self) -> Tensor:
        """lambda_t = log(ab_t / (1 - ab_t)) (exact; -inf at a zero-terminal-SNR step)."""
        return torch.log(self.alpha_bars) - torch.log1p(-self.alpha_bars)

    @property
    def snr(self) -> Tensor:
        """SNR_t = ab_t / (1 - ab_t) (exact; 0 at a zero-terminal-SNR step)."""
        return self.alpha_bars / (1.0 - self.alpha_bars)

    @property
    def sigma_min(self) -> float:
        return self.sigmas[0].item()

    @property
    def sigma_max(self) -> float:
        return self.sigmas[-1].item()

    @property
    def zero_terminal_snr(self) -> bool:
        return bool(self.alpha_bars[-1] == 0)

    def _gather(self, table: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if t.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"t must be an integer tensor of timesteps, got {t.dtype}")
        if t.device.type == "mps":  # no float64 on MPS
            return table[t.cpu()]
        return table.to(t.device)[t]

    def snr_at(self, t: Tensor) -> Tensor:
        """SNR_t = ab_t / (1 - ab_t) in float64 at integer timesteps ``t``."""
        return self._gather(self.snr, t)

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha_t, sigma_t) = (sqrt(ab_t), sqrt(1 - ab_t)) in float64, shaped like ``t``."""
        ab = self._gather(self.alpha_bars, t)
        return ab.sqrt(), (1.0 - ab).sqrt()

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise, t long (B,), result in x0's dtype."""
        alpha, sigma = self.coefficients(t)
        alpha = append_dims(alpha, x0.ndim).to(x0.device, x0.dtype)
        sigma = append_dims(sigma, x0.ndim).to(x0.device, x0.dtype)
        return alpha * x0 + sigma * noise

    def posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7), with ab_{-1} = 1:

        mean = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0
             + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
        var  = (1 - ab_{t-1}) / (1 - ab_t) beta_t   (returned as (B, 1, ..., 1)).
        """
        ab, ab_prev = self._gather(self.alpha_bars, t), self._gather(self.alpha_bars_prev, t)
        beta, alpha = self._gather(self.betas, t), self._gather(self.alphas, t)
        c0 = ab_prev.sqrt() * beta / (1.0 - ab)
        ct = alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab)
        var = (1.0 - ab_prev) / (1.0 - ab) * beta

        def cast(v: Tensor) -> Tensor:
            return append_dims(v, x0.ndim).to(x0.device, x0.dtype)

        return cast(c0) * x0 + cast(ct) * x_t, cast(var)

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Continuous timestep for a noise level: piecewise-linear interpolation of log sigma over
        the grid (float64, exact integers at grid points; clamped to [0, T-1] outside the range)."""
        log_s = torch.log(torch.as_tensor(sigma).to(torch.float64))
        grid = self._log_sigmas.to(log_s.device)
        lo = (torch.searchsorted(grid, log_s.contiguous(), right=True) - 1).clamp(
            0, grid.numel() - 2
        )
        w = ((log_s - grid[lo]) / (grid[lo + 1] - grid[lo])).clamp(0.0, 1.0)
        return lo.to(torch.float64) + w

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """Inverse of :meth:`sigma_to_t`: sigma(t) = exp(lerp of log sigma), t real in [0, T-1]."""
        t = torch.as_tensor(t).to(torch.float64).clamp(0, self.num_steps - 1)
        grid = self._log_sigmas.to(t.device)
        lo = t.floor().long().clamp(max=self.num_steps - 2)
        w = t - lo.to(torch.float64)
        return torch.exp(grid[lo] + w * (grid[lo + 1] - grid[lo]))

    @staticmethod
    def sigma_space_coefficients(sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha, sigma_vp) = (1, sigma) / sqrt(1 + sigma^2): the network input is
        x_vp = alpha x_sigma at sigma-space level sigma (same dtype/device as ``sigma``)."""
        sigma = torch.as_tensor(sigma)
        alpha = torch.rsqrt(1.0 + sigma * sigma)
        return alpha, sigma * alpha

    @staticmethod
    def alpha_bar_at(sigma: Tensor) -> Tensor:
        """ab = 1 / (1 + sigma^2), the VP signal level of a sigma-space noise level."""
        sigma = torch.as_tensor(sigma)
        return 1.0 / (1.0 + sigma * sigma)

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.num_steps}, sigma_min={self.sigma_min:.4g}, "
            f"sigma_max={self.sigma_max:.4g}, zero_terminal_snr={self.zero_terminal_snr})"
        )


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Lin et al. 2023 ("Common diffusion noise schedules are flawed"), Algorithm 1.

    Shift and scale sqrt(ab) so that sqrt(ab_{T-1}) = 0 and sqrt(ab_0) is unchanged:
    sqrt(ab)' = (sqrt(ab) - sqrt(ab_{T-1})) * sqrt(ab_0) / (sqrt(ab_0) - sqrt(ab_{T-1})); then
    betas' = 1 - ab'_t / ab'_{t-1} (beta'_0 = 1 - ab'_0, beta'_{T-1} = 1 exactly).
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.ndim != 1 or betas.numel() < 2:
        raise ValueError("rescale_zero_terminal_snr needs a 1-d tensor of at least 2 betas")
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].item(), sqrt_ab[-1].item()
    if not first > last:
        raise ValueError("alpha_bar must decrease over the schedule to rescale it")
    sqrt_ab = (sqrt_ab - last) * (first / (first - last))
    ab = sqrt_ab**2
    alphas = torch.cat([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


def _finish(betas: Tensor, zero_terminal_snr: bool) -> NoiseSchedule:
    return NoiseSchedule(rescale_zero_terminal_snr(betas) if zero_terminal_snr else betas)


def _check_num_steps(num_steps: int) -> None:
    if int(num_steps) != num_steps or num_steps < 2:
        raise ValueError(f"num_steps must be an integer >= 2, got {num_steps}")


def _betas_from_alpha_bar(alpha_bar, num_steps: int, max_beta: float) -> Tensor:
    """beta_t = min(1 - ab((t+1)/T) / ab(t/T), max_beta) for a continuous ab(u), u in [0, 1]."""
    if not 0 < max_beta <= 1:
        raise ValueError(f"max_beta must lie in (0, 1], got {max_beta}")
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    ab = alpha_bar(u)
    return (1.0 - ab[1:] / ab[:-1]).clamp(max=max_beta)


def linear_schedule(
    num_steps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    zero_terminal_snr: bool = False,
) -> NoiseSchedule:
    """DDPM linear betas: beta_t = linspace(beta_start, beta_end, T) * (1000 / T).

    The 1000/T factor (improved-diffusion) keeps ab_{T-1} comparable when T != 1000; it raises a
    ValueError if it pushes a beta above 1 (T < 20 with the defaults).
    """
    _check_num_steps(num_steps)
    if not 0 < beta_start < beta_end:
        raise ValueError(f"need 0 < beta_start < beta_end, got {beta_start}, {beta_end}")
    scale = 1000.0 / num_steps
    betas = torch.linspace(beta_start * scale, beta_end * scale, num_steps, dtype=torch.float64)
    return _finish(betas, zero_terminal_snr)


def cosine_schedule(
    num_steps: int = 1000,
    s: float = 0.008,
    max_beta: float = 0.999,
    zero_terminal_snr: bool = False,
) -> NoiseSchedule:
    """Nichol & Dhariwal 2021: ab(u) = f(u)/f(0), f(u) = cos^2((u + s)/(1 + s) * pi/2), u = t/T;
    beta_t = min(1 - ab((t+1)/T)/ab(t/T), max_beta)."""
    _check_num_steps(num_steps)
    if s <= 0:
        raise ValueError(f"cosine offset s must be > 0, got {s}")

    def f(u: Tensor) -> Tensor:
        return torch.cos((u + s) / (1 + s) * (math.pi / 2)) ** 2

    betas = _betas_from_alpha_bar(lambda u: f(u) / f(torch.zeros(())), num_steps, max_beta)
    return _finish(betas, zero_terminal_snr)


def sigmoid_schedule(
    num_steps: int = 1000,
    start: float = -3.0,
    end: float = 3.0,
    tau: float = 1.0,
    zero_terminal_snr: bool = False,
    max_beta: float = 0.999,
) -> NoiseSchedule:
    """Chen 2023 ("On the importance of noise scheduling"), sigmoid ab:
    ab(u) = (v_end - sigmoid((u (end - start) + start)/tau)) / (v_end - v_start),
    v_x = sigmoid(x/tau);
    beta_t = min(1 - ab((t+1)/T)/ab(t/T), max_beta)."""
    _check_num_steps(num_steps)
    if not start < end or tau <= 0:
        raise ValueError(f"need start < end and tau > 0, got start={start}, end={end}, tau={tau}")
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))

    def alpha_bar(u: Tensor) -> Tensor:
        return (v_end - torch.sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)

    betas = _betas_from_alpha_bar(alpha_bar, num_steps, max_beta)
    return _finish(betas, zero_terminal_snr)
