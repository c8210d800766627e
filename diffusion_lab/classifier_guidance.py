"""Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis",
Algorithm 2; Song et al. 2021, Sec. 5) as a wrapper around a sigma-space denoiser.

With x = x0 + sigma eps, Tweedie's formula ties the denoiser to the score,
grad_x log p_sigma(x) = (D(x, sigma) - x) / sigma^2. Bayes' rule adds the noisy classifier's
gradient to the score, grad log p(x | y) = grad log p(x) + grad_x log p(y | x, sigma), so the
denoiser of the class-conditional law is

    D(x, sigma | y) = D(x, sigma) + sigma^2 grad_x log p(y | x, sigma),

and a scale s multiplies the classifier term (p(y | x)^s: sharper classes for s > 1):

    D_s(x, sigma, y) = D(x, sigma) + s sigma^2 grad_x log p_phi(y | x, sigma).

In the VP variables of the paper (x_vp = alpha x, sigma_vp = alpha sigma) this is its
eps_g = eps - s sigma_vp grad_{x_vp} log p(y | x_vp): grad_x = alpha grad_{x_vp} and
x - sigma eps_g = D + s sigma sigma_vp alpha grad_{x_vp} = D + s sigma^2 grad_x.

The classifier is any ``classifier(x, sigma) -> logits`` in sigma-space variables;
:class:`VPClassifier` wraps a network trained on VP inputs (x_vp, t) as the diffusion
backbones are. The gradient is taken by autograd, also when the sampler runs under
``torch.no_grad`` or ``torch.inference_mode``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
from torch import Tensor

from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser, append_dims

__all__ = ["Classifier", "VPClassifier", "check_classifier_scale", "classifier_guided",
           "log_prob_gradient"]

#: ``classifier(x, sigma) -> logits (B, K)`` with x (B, ...) in sigma space, sigma (B,).
Classifier = Callable[[Tensor, Tensor], Tensor]


def check_classifier_scale(scale: object) -> float:
    """``float(scale)`` for a finite number >= 0 (0 = no classifier guidance); ValueError
    (one line) otherwise."""
    if isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale) \
            or scale < 0:
        raise ValueError("guidance.classifier_scale must be a finite number >= 0 "
                         f"(0 = off, 1 = the classifier's posterior), got {scale!r}")
    return float(scale)


class VPClassifier:
    """classifier(x, sigma) = net(x / sqrt(1 + sigma^2), t(sigma)): the VP input and timestep
    the diffusion backbones get (``precond.VPDenoiser``), for a ``net(x_vp, t) -> logits``
    trained on x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps of ``schedule``."""

    def __init__(self, net: Callable[[Tensor, Tensor], Tensor], schedule: NoiseSchedule) -> None:
        self.net = net
        self.schedule = schedule

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        s64 = sigma.to(torch.float64)
        alpha, _ = self.schedule.sigma_space_coefficients(s64)
        t = self.schedule.sigma_to_t(s64).to(x.dtype)
        return self.net(x * append_dims(alpha, x.ndim).to(x.dtype), t)


def log_prob_gradient(classifier: Classifier, x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
    """grad_x log p(y_i | x_i, sigma_i) for every row i (the rows are independent, so the
    gradient of the sum is each row's own), in x's dtype."""
    with torch.inference_mode(False), torch.enable_grad():
        # a clone outside inference mode is an ordinary tensor autograd may record
        xg = x.detach().clone().requires_grad_(True)
        sig = torch.as_tensor(sigma).detach().clone()
        logits = classifier(xg, sig)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        picked = torch.log_softmax(logits, dim=-1).gather(1, y.long().view(-1, 1).clone())
        (grad,) = torch.autograd.grad(picked.sum(), xg)
    return grad.to(x.dtype)


def classifier_guided(denoiser: Denoiser, classifier: Classifier, scale: float, *,
                      pass_cond: bool = False) -> Denoiser:
    """D_s(x, sigma, y) = D(x, sigma, .) + s sigma^2 grad_x log p_phi(y | x, sigma).

    ``y`` (the sampler's ``cond``) are the classes asked for. ``pass_cond``: the denoiser is
    class-conditional and gets ``y`` too (classifier guidance on top of a conditional model,
    as in the paper's best results); otherwise it is called with ``cond=None``. ``scale`` 0
    is the plain denoiser (no classifier call)."""
    scale = check_classifier_scale(scale)

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("classifier guidance needs the classes to guide towards (cond)")
        d = denoiser(x, sigma, cond if pass_cond else None)
        if scale == 0.0:
            return d
        sig = torch.as_tensor(sigma, device=x.device)
        if sig.ndim == 0:
            sig = sig.expand(x.shape[0])
        grad = log_prob_gradient(classifier, x, sig, cond)
        weight = append_dims(scale * sig.to(torch.float64) ** 2, x.ndim)
        return (d.to(torch.float64) + weight * grad.to(torch.float64)).to(d.dtype)

    return guided
