"""The latent scale factor, measured on the encoded training set.

With posterior q(z|x_i) = N(m_i, s_i^2) per latent channel c (over images i and positions),
    shift_c = E[m],   Var[z]_c = Var[m] + E[s^2],   scale_c = 1 / sqrt(Var[z]_c),
and the diffusion model sees z' = (z - shift) * scale, of zero mean and unit variance per
channel (``per_channel=False``: one shift and scale over all channels, as Stable Diffusion's
single 0.18215, which was measured the same way for its own autoencoder). Decoding inverts it:
z = z' / scale + shift. A scale that does not fit the autoencoder (another model's constant) leaves
the scaled latents far from unit std: the diffusion model then learns data at the wrong noise
level and samples decode to noise or washed-out images; :func:`check_scaled_std` warns.
"""

from __future__ import annotations

import logging

from torch import Tensor

log = logging.getLogger(__name__)

#: scaled-latent std outside [1 / STD_TOLERANCE, STD_TOLERANCE] is reported as wrong
STD_TOLERANCE = 2.0


def measure_scale(mean: Tensor, logvar: Tensor, per_channel: bool = True) -> tuple[Tensor, Tensor]:
    """(shift, scale), each (C,) (or (1,)), from posterior parameters (N, C, H, W) of the
    training images: shift = E[m], scale = 1 / sqrt(Var[m] + E[exp(logvar)])."""
    dims = (0, 2, 3) if per_channel else (0, 1, 2, 3)
    m, var = mean.double(), logvar.double().exp()
    shift = m.mean(dims)
    total = m.var(dims, unbiased=False) + var.mean(dims)
    scale = total.clamp_min(1e-12).rsqrt()
    return shift.float().reshape(-1), scale.float().reshape(-1)


def scaled_std(mean: Tensor, logvar: Tensor, shift: Tensor, scale: Tensor) -> float:
    """The overall std of z' = (z - shift) * scale, z ~ q(z|x), over the given latents."""
    s, k = shift.view(1, -1, 1, 1), scale.view(1, -1, 1, 1)
    m = (mean.double() - s) * k
    second_moment = (m.pow(2) + logvar.double().exp() * k.pow(2)).mean()
    return float((second_moment - m.mean() ** 2).sqrt())


def check_scaled_std(std: float) -> str | None:
    """A warning (one line, also logged) when the scaled latents' std is far from 1, else None."""
    if 1.0 / STD_TOLERANCE <= std <= STD_TOLERANCE:
        return None
    message = (f"the scaled latents have std {std:.3g}, far from 1: the scale does not fit this "
               "autoencoder (e.g. another model's 0.18215); samples will decode to noise or "
               "washed-out images. Leave autoencoder.latent.scale null to measure it")
    log.warning(message)
    return message
