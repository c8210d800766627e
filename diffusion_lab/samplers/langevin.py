"""Predictor-corrector sampling (Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations", Algorithms 2-3), sigma space (their VE form: x = x0 + sigma z).

Score from the denoiser (Tweedie): grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2.

Predictor, from s to s' (the ancestral step, whose mean is the reverse-diffusion predictor's
x + (s^2 - s'^2) score and whose noise is the exact posterior's):

    x' = D + (s'^2/s^2)(x - D) + s' sqrt(1 - s'^2/s^2) z.

Corrector, ``corrector_steps`` Langevin MCMC steps at s' targeting p_{s'}, each with a fresh
score and z, x <- x + eps score + sqrt(2 eps) z, with the step size set by a signal-to-noise
ratio r (``snr``) by one of two rules (``step_rule``):

* ``"norm"`` (Song et al.'s): eps = 2 (r |z| / |score|)^2 per sample. The step then depends on
  the state, and the chain's stationary law is not p_{s'} but one wider by about 4/d in
  variance per dimension (d = the sample's dimension, whatever r: p/eps, not p, is what such a
  chain preserves): negligible for images, large for 2-D points (``tests/test_predictor_corrector.py``).
* ``"sigma"``: eps = 2 (r s')^2, the same for every sample, unadjusted Langevin with a fixed
  step, whose stationary law tends to p_{s'} as r -> 0 (on Gaussian data variance
  v / (1 - eps / (2 v)) for marginal variance v). The Hessian of -log p_{s'} has eigenvalues in
  [0, 1/s'^2] (Tweedie: (I - Cov[x0 | x] / s'^2) / s'^2), so the step is stable for r < 1.

The step to sigma = 0 returns D and is not corrected. NFE = n + corrector_steps (n - 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffusion_lab.samplers._common import denoise, require_noise, with_nfe
from diffusion_lab.samplers.ddim_ddpm import _ddpm_small_rule, _run
from diffusion_lab.types import Denoiser, NoiseFn, StepCallback

__all__ = ["STEP_RULES", "langevin_correct", "predictor_corrector"]


STEP_RULES = ("norm", "sigma")


def langevin_correct(denoiser: Denoiser, x: Tensor, sigma: float, cond: Tensor | None,
                     noise: NoiseFn, steps: int, snr: float, step_rule: str = "sigma") -> Tensor:
    """``steps`` Langevin steps at noise level ``sigma`` (the corrector above)."""
    for _ in range(steps):
        score = (denoise(denoiser, x, sigma, cond) - x) / sigma**2
        z = noise(x)
        if step_rule == "sigma":
            eps = torch.full((x.shape[0],), 2.0 * (snr * sigma) ** 2, dtype=x.dtype,
                             device=x.device)
        else:
            z_norm = z.flatten(1).norm(dim=1)
            s_norm = score.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
            eps = 2.0 * (snr * z_norm / s_norm) ** 2
        eps = eps.view(-1, *[1] * (x.ndim - 1))
        x = x + eps * score + torch.sqrt(2.0 * eps) * z
    return x


def _nfe(n: int, corrector_steps: int = 1) -> int:
    return n + corrector_steps * max(n - 1, 0)


@with_nfe(_nfe)
@torch.no_grad()
def predictor_corrector(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: StepCallback | None = None,
    noise: NoiseFn | None = None,
    corrector_steps: int = 1,
    snr: float = 0.3,
    step_rule: str = "sigma",
) -> Tensor:
    """Ancestral predictor + Langevin corrector; ``corrector_steps=0`` is DDPM ancestral
    sampling, ``snr=0.16 step_rule="norm"`` Song et al.'s corrector (their CIFAR-10 VE value).
    ``noise`` required."""
    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {STEP_RULES}, got {step_rule!r}")
    if isinstance(corrector_steps, bool) or int(corrector_steps) != corrector_steps \
            or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be an integer >= 0, got {corrector_steps!r}")
    if not snr > 0:
        raise ValueError(f"snr must be > 0, got {snr!r}")
    require_noise(noise, "predictor_corrector")

    def correct(x: Tensor, sigma: float) -> Tensor:
        return langevin_correct(denoiser, x, sigma, cond, noise, int(corrector_steps), snr,
                                step_rule)

    return _run(_ddpm_small_rule, denoiser, x, sigmas, cond, callback, noise,
                after_step=correct if corrector_steps else None)
