"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper around a sigma-space denoiser.

Guidance is defined in eps space, eps_g = eps_u + w (eps_c - eps_u). In sigma space
eps = (x - D)/sigma, which for fixed (x, sigma) is affine in D, and the weights (1 - w, w) sum to 1:

    x - sigma eps_g = (1 - w)(x - sigma eps_u) + w (x - sigma eps_c) = D_u + w (D_c - D_u).

So D_g = D_u + w (D_c - D_u) is the same guidance, and computing it in that form never divides by
sigma (valid at sigma = 0 too).
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from diffusion_lab.types import Denoiser

__all__ = ["check_guidance_rescale", "check_guidance_scale", "check_guidance_scales",
           "classifier_free", "drop_labels",
           "guidance_scale_problem", "rescale_guided"]


def guidance_scale_problem(
    scale: object, *, conditional: bool = True, null_label_trained: bool = True,
    name: str = "guidance scale",
) -> str | None:
    """Why ``scale`` cannot guide this model (one line), or None: the one guidance-scale rule.

    w must be a finite number >= 0; w != 1 mixes in the null-label prediction, so it needs a
    class-conditional model trained with label dropout (the null label's embedding is
    otherwise never trained).
    """
    if isinstance(scale, bool) or not isinstance(scale, Real):
        return f"{name} must be a number, got {scale!r}"
    if not math.isfinite(scale) or scale < 0:
        return f"{name} must be a finite number >= 0 (1 = no guidance), got {scale}"
    if scale != 1 and not conditional:
        return f"{name}={scale:g} needs a class-conditional model, but this one has no labels (use 1)"
    if scale != 1 and not null_label_trained:
        return (f"{name}={scale:g} needs the null label, which this model never trained "
                "(label dropout 0, guidance=none): use 1, or train with guidance=cfg")
    return None


def check_guidance_scale(scale: object, **facts) -> float:
    """``float(scale)``, or ValueError with :func:`guidance_scale_problem`'s line."""
    problem = guidance_scale_problem(scale, **facts)
    if problem:
        raise ValueError(problem)
    return float(scale)


def check_guidance_scales(scales, name: str) -> list[float]:
    """A sweep's scales as floats: a non-empty list of valid w (ValueError, one line)."""
    if not scales:
        raise ValueError(f"scales must be a non-empty list of w >= 0, got {scales}")
    return [check_guidance_scale(w, name=name) for w in scales]


def check_guidance_rescale(phi: object) -> float:
    """``float(phi)`` for a rescale factor in [0, 1]; ValueError (one line) otherwise."""
    if isinstance(phi, bool) or not isinstance(phi, Real) or not 0.0 <= float(phi) <= 1.0:
        raise ValueError(f"guidance.rescale must be a number in [0, 1] (0 = off), got {phi!r}")
    return float(phi)


def rescale_guided(x: Tensor, d_guided: Tensor, d_positive: Tensor, phi: float) -> Tensor:
    """Guidance rescale (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
    flawed", Sec. 3.4), in eps space as diffusers' ``guidance_rescale`` applies it to
    eps-prediction models: with eps = (x - D) / sigma per sample,

        eps_r = eps_g * std(eps_pos) / std(eps_g),   eps_out = phi eps_r + (1 - phi) eps_g,

    std over each sample's elements. A large guidance scale inflates std(eps_g) and
    over-exposes the samples; rescaling brings it back to the positive (conditional)
    prediction's. The 1/sigma factors cancel in the ratio, so this never divides by sigma:
    D_out = x - (phi r + 1 - phi)(x - D_g), r = std(x - D_pos) / std(x - D_g) (r = 1 where
    std(x - D_g) = 0, e.g. at sigma = 0)."""
    if phi == 0.0:
        return d_guided
    dims = tuple(range(1, x.ndim))
    eps_g, eps_pos = x - d_guided, x - d_positive
    std_g = eps_g.std(dim=dims, keepdim=True)
    ratio = torch.where(std_g > 0, eps_pos.std(dim=dims, keepdim=True) / std_g,
                        torch.ones_like(std_g))
    return x - (phi * ratio + (1.0 - phi)) * eps_g


def _null_labels(cond: Tensor | None, batch: int, null_class: int, device: torch.device,
                 negative: Tensor | None = None) -> Tensor:
    if negative is not None:  # one condition for every sample (a negative prompt)
        return negative.to(device).expand(batch, *negative.shape[1:])
    if cond is None:
        return torch.full((batch,), null_class, dtype=torch.long, device=device)
    return torch.full_like(cond, null_class)


def classifier_free(denoiser: Denoiser, scale: float, null_class: int,
                    rescale: float = 0.0, negative: Tensor | None = None) -> Denoiser:
    """Guided denoiser D_g = D_u + w (D_c - D_u), i.e. eps_g = eps_u + w (eps_c - eps_u).

    One batched call D(cat[x, x], cat[sigma, sigma], cat[cond, null]) per guided evaluation.
    w = 1 returns ``denoiser`` itself (no unconditional pass); w = 0 evaluates only the null labels.
    ``rescale`` = phi > 0: :func:`rescale_guided` towards the conditional prediction's std.
    ``negative`` (1, ...): a condition that takes the null labels' place for every sample
    (a negative prompt, D_g = D_neg + w (D_c - D_neg): guided away from it).
    """
    scale = check_guidance_scale(scale)
    rescale = check_guidance_rescale(rescale)
    if scale == 1.0:
        return denoiser

    if scale == 0.0:

        def unconditional(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
            return denoiser(x, sigma, _null_labels(cond, x.shape[0], null_class, x.device,
                                                   negative))

        return unconditional

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError(f"guidance scale {scale} needs class labels (cond is None)")
        batch = x.shape[0]
        both = denoiser(
            torch.cat([x, x]),
            torch.cat([sigma, sigma]),
            torch.cat([cond, _null_labels(cond, batch, null_class, x.device, negative)]),
        )
        d_cond, d_uncond = both[:batch], both[batch:]
        return rescale_guided(x, d_uncond + scale * (d_cond - d_uncond), d_cond, rescale)

    return guided


def drop_labels(
    cond: Tensor, p: float = 0.1, *, null_class: int, generator: torch.Generator | None = None
) -> Tensor:
    """Training-time label dropout: each label becomes ``null_class`` independently w.p. ``p``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label drop probability must lie in [0, 1], got {p}")
    draw_device = generator.device if generator is not None else cond.device
    u = torch.rand(cond.shape, generator=generator, device=draw_device).to(cond.device)
    return torch.where(u < p, torch.full_like(cond, null_class), cond)
