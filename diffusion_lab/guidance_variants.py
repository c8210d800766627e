"""Guidance beyond plain CFG: a noise-level interval (Kynkäänniemi et al. 2024),
autoguidance (Karras et al. 2024) and the guidance rescale of either (Lin et al. 2024,
``guidance.rescale_guided``), as wrappers around sigma-space denoisers.

Interval: D_g = D_u + w (D_c - D_u) only where sigma_lo < sigma <= sigma_hi, the conditional D_c
elsewhere. Guidance at high noise mostly drags samples towards a few modes, and at low noise it
does little; outside the interval one conditional evaluation replaces the batched pair.

Autoguidance: D_g = D_weak + w (D - D_weak), both conditional, with D_weak a weaker version of the
same model (fewer training steps, an early EMA snapshot). It sharpens towards what the model has
learnt rather than away from the unconditional model, so it helps unconditional models too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from diffusion_lab.guidance import check_guidance_rescale, classifier_free, rescale_guided
from diffusion_lab.types import Denoiser

__all__ = [
    "autoguidance",
    "check_interval",
    "guidance_rule",
    "interval_guidance",
    "within_interval",
]


def check_interval(interval: Sequence[float]) -> tuple[float, float]:
    """(lo, hi) with 0 <= lo < hi, from any 2-sequence; ValueError otherwise."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance interval must be [sigma_lo, sigma_hi], got {interval!r}") from None
    if not 0.0 <= lo < hi:
        raise ValueError(f"guidance interval needs 0 <= sigma_lo < sigma_hi, got [{lo}, {hi}]")
    return lo, hi


def within_interval(plain: Denoiser, guided: Denoiser, interval: Sequence[float]) -> Denoiser:
    """``guided`` for sigma in (lo, hi], ``plain`` elsewhere. All rows of a call share one sigma
    in every sampler here; a mixed batch is split row-wise."""
    lo, hi = check_interval(interval)

    def interval_guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        inside = (sigma > lo) & (sigma <= hi)
        if bool(inside.all()):
            return guided(x, sigma, cond)
        if not bool(inside.any()):
            return plain(x, sigma, cond)
        out = plain(x, sigma, cond).clone()
        out[inside] = guided(x[inside], sigma[inside], None if cond is None else cond[inside])
        return out

    return interval_guided


def interval_guidance(
    denoiser: Denoiser, scale: float, null_class: int, interval: Sequence[float]
) -> Denoiser:
    """CFG with scale w for sigma in (lo, hi], the conditional denoiser elsewhere."""
    return within_interval(denoiser, classifier_free(denoiser, scale, null_class), interval)


def autoguidance(denoiser: Denoiser, guide: Denoiser, scale: float,
                 rescale: float = 0.0) -> Denoiser:
    """D_g = D_guide + w (D - D_guide); w = 1 returns ``denoiser`` (no guide evaluation).
    ``rescale`` = phi > 0: ``guidance.rescale_guided`` towards the main model's std."""
    scale = float(scale)
    if scale < 0:
        raise ValueError(f"autoguidance scale must be >= 0, got {scale}")
    rescale = check_guidance_rescale(rescale)
    if scale == 1.0:
        return denoiser

    def autoguided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        d_weak = guide(x, sigma, cond)
        if scale == 0:
            return d_weak
        d_main = denoiser(x, sigma, cond)
        return rescale_guided(x, torch.lerp(d_weak, d_main, scale), d_main, rescale)

    return autoguided


def guidance_rule(interval: Sequence[float] | None = None, guide: Denoiser | None = None,
                  rescale: float = 0.0):
    """``rule(denoiser, scale, null_class) -> guided denoiser``: CFG (or autoguidance by
    ``guide``), rescaled by ``rescale`` (phi, 0 = off), restricted to ``interval`` when one is
    given."""
    if interval is not None:
        check_interval(interval)
    rescale = check_guidance_rescale(rescale)

    def rule(denoiser: Denoiser, scale: float, null_class: int) -> Denoiser:
        if guide is not None:
            guided = autoguidance(denoiser, guide, scale, rescale)
        else:
            guided = classifier_free(denoiser, scale, null_class, rescale)
        return guided if interval is None else within_interval(denoiser, guided, interval)

    return rule
