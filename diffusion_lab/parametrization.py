"""What the backbone predicts: eps, x0 or v, as conversions between VP quantities.

With VP coefficients alpha = sqrt(ab), sigma = sqrt(1 - ab) (alpha^2 + sigma^2 = 1) and
x_t = alpha x0 + sigma eps, the three targets are eps, x0 and v = alpha eps - sigma x0
(Salimans & Ho 2022). ``alpha`` and ``sigma`` must already broadcast against ``x_t``.
eps and x0 prediction hold for any path x_t = alpha x0 + sigma eps; v needs alpha^2 + sigma^2 = 1
(VP) and the flow velocity u = eps - x0 needs the linear path alpha + sigma = 1
(:mod:`diffusion_lab.paths`).
"""

from __future__ import annotations

from torch import Tensor

__all__ = [
    "EpsPrediction",
    "FlowVelocityPrediction",
    "VPrediction",
    "X0Prediction",
    "eps_from_v",
    "eps_from_x0",
    "v_from_x0_eps",
    "x0_from_eps",
    "x0_from_v",
]


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x0 = (x_t - sigma eps) / alpha (undefined at alpha = 0, i.e. zero terminal SNR)."""
    return (x_t - sigma * eps) / alpha


def eps_from_x0(x_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """eps = (x_t - alpha x0) / sigma."""
    return (x_t - alpha * x0) / sigma


def v_from_x0_eps(x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = alpha eps - sigma x0."""
    return alpha * eps - sigma * x0


def x0_from_v(x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x0 = alpha x_t - sigma v (uses alpha^2 + sigma^2 = 1)."""
    return alpha * x_t - sigma * v


def eps_from_v(x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """eps = sigma x_t + alpha v (uses alpha^2 + sigma^2 = 1)."""
    return sigma * x_t + alpha * v


def check_fits_schedule(prediction: object, schedule) -> None:
    """The one zero-terminal-SNR rule: eps prediction cannot recover x0 where alpha = 0
    (x0 = (x_t - sigma eps)/alpha), so it refuses a schedule with ``zero_terminal_snr``.
    A prediction whose conversions assume a path family (``requires_path``: v needs VP, the flow
    velocity the linear path) refuses a schedule of another (``schedule.path_kind``)."""
    needed, kind = getattr(prediction, "requires_path", None), getattr(schedule, "path_kind", "vp")
    if needed is not None and needed != kind:
        fix = "schedule=linear_flow" if needed == "linear" else "a VP schedule (schedule=cosine)"
        raise ValueError(
            f"{type(prediction).__name__} needs the {needed} path but the schedule is a {kind} "
            f"path ({type(schedule).__name__}); use {fix}, or objective=eps / objective=x0"
        )
    if getattr(schedule, "zero_terminal_snr", False) and not getattr(prediction, "supports_zero_snr", True):
        raise ValueError(
            f"{type(prediction).__name__} cannot be used with a zero-terminal-SNR schedule "
            "(x0 = (x_t - sigma eps)/alpha divides by alpha = 0 at the last step); "
            "use objective=v or objective=x0"
        )


class EpsPrediction:
    """The backbone predicts eps (DDPM). min-SNR weight min(snr, g)/snr = g / max(snr, g)."""

    name = "eps"
    supports_zero_snr = False  # x0 = (x_t - sigma eps)/alpha divides by alpha = 0

    def target(self, x0: Tensor, noise: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return noise

    def to_x0(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x0_from_eps(x_t, out, alpha, sigma)

    def to_eps(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return out

    def from_x0(self, x0_hat: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return eps_from_x0(x_t, x0_hat, alpha, sigma)

    def min_snr_weight(self, snr: Tensor, gamma: float) -> Tensor:
        # exactly 1 where snr <= gamma (also at snr = 0), gamma/snr above
        return gamma / snr.clamp(min=gamma)

    def __repr__(self) -> str:
        return "EpsPrediction()"


class X0Prediction:
    """The backbone predicts x0. min-SNR weight min(snr, g)."""

    name = "x0"
    supports_zero_snr = True

    def target(self, x0: Tensor, noise: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x0

    def to_x0(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return out

    def to_eps(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return eps_from_x0(x_t, out, alpha, sigma)

    def from_x0(self, x0_hat: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x0_hat

    def min_snr_weight(self, snr: Tensor, gamma: float) -> Tensor:
        return snr.clamp(max=gamma)

    def __repr__(self) -> str:
        return "X0Prediction()"


class VPrediction:
    """The backbone predicts v = alpha eps - sigma x0. min-SNR weight min(snr, g)/(snr + 1)."""

    name = "v"
    supports_zero_snr = True
    requires_path = "vp"  # x0 = alpha x_t - sigma v uses alpha^2 + sigma^2 = 1

    def target(self, x0: Tensor, noise: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return v_from_x0_eps(x0, noise, alpha, sigma)

    def to_x0(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x0_from_v(x_t, out, alpha, sigma)

    def to_eps(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return eps_from_v(x_t, out, alpha, sigma)

    def from_x0(self, x0_hat: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """Inverse of to_x0: v = (alpha x_t - x0) / sigma."""
        return (alpha * x_t - x0_hat) / sigma

    def min_snr_weight(self, snr: Tensor, gamma: float) -> Tensor:
        return snr.clamp(max=gamma) / (snr + 1.0)

    def __repr__(self) -> str:
        return "VPrediction()"


class FlowVelocityPrediction:
    """The backbone predicts the linear path's velocity u = dx_t/dt = eps - x0 (rectified flow).

    With x_t = (1 - t) x0 + t eps (alpha = 1 - t, sigma = t, alpha + sigma = 1):
    x0 = x_t - sigma u, eps = x_t + alpha u, u = (x_t - x0) / sigma.
    min-SNR weight min(snr, g) sigma^2 = min(snr, g) / (1 + sqrt(snr))^2 (the x0 loss's weight
    carried to u, since x0 error = sigma u error and sigma = t = 1 / (1 + sqrt(snr))).
    """

    name = "flow"
    supports_zero_snr = True
    requires_path = "linear"

    def target(self, x0: Tensor, noise: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return noise - x0

    def to_x0(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x_t - sigma * out

    def to_eps(self, out: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x_t + alpha * out

    def from_x0(self, x0_hat: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return (x_t - x0_hat) / sigma

    def min_snr_weight(self, snr: Tensor, gamma: float) -> Tensor:
        return snr.clamp(max=gamma) / (1.0 + snr.sqrt()) ** 2

    def __repr__(self) -> str:
        return "FlowVelocityPrediction()"
