"""Samplers: pure functions ``fn(denoiser, x, sigmas, *, cond, callback, noise, ...) -> x0``.

``x`` is the sigma-space sample at sigmas[0], ``sigmas`` a strictly descending float64 grid ending
in 0 (see :mod:`diffusion_lab.discretization`). The last step always returns the denoised mean.

NFE on a grid of n steps: euler, dpmpp_2m, dpmpp_3m, unipc, dpmpp_2m_sde, ddim, ddpm,
ddpm_large_variance: n; heun: 2n - 1 (``solver_nfe(fn, n)`` reads it; ``count_nfe(D)`` counts
calls empirically). Orders on the PF-ODE: euler 1, heun and dpmpp_2m 2, dpmpp_3m 3, unipc p + 1.
"""

from diffusion_lab.samplers._common import CountingDenoiser, count_nfe, solver_nfe
from diffusion_lab.samplers.ddim_ddpm import ddim, ddpm, ddpm_large_variance
from diffusion_lab.samplers.dpmpp_sde import dpmpp_2m_sde
from diffusion_lab.samplers.multistep import dpmpp_3m
from diffusion_lab.samplers.ode import dpmpp_2m, euler, heun
from diffusion_lab.samplers.unipc import unipc

__all__ = [
    "CountingDenoiser",
    "count_nfe",
    "ddim",
    "ddpm",
    "ddpm_large_variance",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_3m",
    "euler",
    "heun",
    "solver_nfe",
    "unipc",
]
