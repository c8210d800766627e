"""Samplers: pure functions ``fn(denoiser, x, sigmas, *, cond, callback, noise, ...) -> x0``.

``x`` is the sigma-space sample at sigmas[0], ``sigmas`` a strictly descending float64 grid ending
in 0 (see :mod:`diffusion_lab.discretization`). The last step always returns the denoised mean.

NFE on a grid of n steps: euler, dpmpp_2m, ddim, ddpm, ddpm_large_variance: n; heun: 2n - 1
(``solver_nfe(fn, n)`` reads it; ``count_nfe(D)`` counts calls empirically).
"""

from functools import partial

from diffusion_lab.samplers._common import CountingDenoiser, count_nfe, solver_nfe
from diffusion_lab.samplers.ddim_ddpm import ddim, ddpm, ddpm_large_variance
from diffusion_lab.samplers.ode import dpmpp_2m, euler, heun

#: every solver by name (DDIM at eta = 0.5 standing for the family between euler and ddpm):
#: what the sampler report and the Gaussian-oracle tests run
SOLVERS = {
    "euler": euler,
    "heun": heun,
    "dpmpp_2m": dpmpp_2m,
    "ddim_eta0.5": partial(ddim, eta=0.5),
    "ddpm": ddpm,
    "ddpm_large_variance": ddpm_large_variance,
}

__all__ = [
    "SOLVERS",
    "CountingDenoiser",
    "count_nfe",
    "ddim",
    "ddpm",
    "ddpm_large_variance",
    "dpmpp_2m",
    "euler",
    "heun",
    "solver_nfe",
]
