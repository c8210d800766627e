"""Samplers: pure functions ``fn(denoiser, x, sigmas, *, cond, callback, noise, ...) -> x0``.

``x`` is the sigma-space sample at sigmas[0], ``sigmas`` a strictly descending float64 grid ending
in 0 (see :mod:`diffusion_lab.discretization`). The last step always returns the denoised mean.

NFE on a grid of n steps: euler, dpmpp_2m, dpmpp_2s, dpmpp_3m, unipc, dpmpp_2m_sde, ddim, ddpm,
ddpm_large_variance, flow_euler, consistency: n; heun, flow_midpoint: 2n - 1;
predictor_corrector: n + corrector_steps (n - 1) (``solver_nfe(fn, n)`` reads it; ``count_nfe(D)`` counts
calls empirically). Orders on the PF-ODE: euler 1, heun, dpmpp_2m and dpmpp_2s 2, dpmpp_3m 3, unipc p + 1;
in t on the linear flow path (``samplers/flow.py``): flow_euler 1, flow_midpoint 2.
"""

from functools import partial

from diffusion_lab.samplers._common import CountingDenoiser, count_nfe, solver_nfe
from diffusion_lab.samplers.consistency_sampling import consistency
from diffusion_lab.samplers.ddim_ddpm import ddim, ddpm, ddpm_large_variance
from diffusion_lab.samplers.dpmpp_sde import dpmpp_2m_sde
from diffusion_lab.samplers.flow import flow_euler, flow_midpoint
from diffusion_lab.samplers.langevin import predictor_corrector
from diffusion_lab.samplers.multistep import dpmpp_3m
from diffusion_lab.samplers.ode import dpmpp_2m, euler, heun
from diffusion_lab.samplers.singlestep import dpmpp_2s
from diffusion_lab.samplers.unipc import unipc

#: every solver by name (DDIM at eta = 0.5 standing for the family between euler and ddpm):
#: what the sampler report and the Gaussian-oracle tests run
SOLVERS = {
    "euler": euler,
    "heun": heun,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2s": dpmpp_2s,
    "dpmpp_2s_heun": partial(dpmpp_2s, variant="heun"),
    "ddim_eta0.5": partial(ddim, eta=0.5),
    "ddpm": ddpm,
    "ddpm_large_variance": ddpm_large_variance,
    "dpmpp_3m": dpmpp_3m,
    "dpmpp_3m_lower_order_final": partial(dpmpp_3m, lower_order_final=True),
    "unipc_bh1_2": partial(unipc, order=2, variant="bh1"),
    "unipc_bh2_2": partial(unipc, order=2, variant="bh2"),
    "unipc_bh2_3": partial(unipc, order=3, variant="bh2"),
    "unip_3": partial(unipc, order=3, corrector=False),
    "dpmpp_2m_sde": dpmpp_2m_sde,
}

__all__ = [
    "SOLVERS",
    "CountingDenoiser",
    "consistency",
    "count_nfe",
    "ddim",
    "ddpm",
    "ddpm_large_variance",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_2s",
    "dpmpp_3m",
    "euler",
    "flow_euler",
    "flow_midpoint",
    "heun",
    "predictor_corrector",
    "solver_nfe",
    "unipc",
]
