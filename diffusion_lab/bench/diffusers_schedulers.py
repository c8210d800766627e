"""Sampler efficiency against diffusers' schedulers on Gaussian data, with the exact predictor.

Data N(mu, diag(s^2)) has the closed-form noise predictor eps*(x_t, t) (``diffusion_lab.oracle``).
Every deterministic scheduler step is affine in x_T per dimension, so its output law is
N(b, a^2 (x_T scale)^2) with b the output from x_T = 0 and b + a from x_T = 1: one batch of two
rows gives the exact W2 to the data law, no sampling error. diffusers gets the same betas
(``trained_betas``), the same exact eps* at the timestep it asks for, and each of its spacings
(``leading``, ``linspace``, ``trailing``, and Karras sigmas where it has them); the best
configuration per scheduler is what a diffusers user could reach.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.schedules import NoiseSchedule

# name: (diffusers class, extra constructor kwargs, whether it takes use_karras_sigmas)
SCHEDULERS = {
    "DDIM": ("DDIMScheduler", {"set_alpha_to_one": True, "clip_sample": False}, False),
    "DPM-Solver++ 2M": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2}, True),
    "UniPC (bh2)": ("UniPCMultistepScheduler", {"solver_order": 2}, True),
    "Euler": ("EulerDiscreteScheduler", {}, True),
    "Heun": ("HeunDiscreteScheduler", {}, True),
}
SPACINGS = ("leading", "linspace", "trailing")


def _diffusers():
    try:
        import diffusers
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ImportError("diffusers is not installed: pip install -e '.[bench]'") from e
    return diffusers


@dataclass
class Result:
    scheduler: str
    config: str
    steps: int
    nfe: int
    w2: float


def exact_eps_model(oracle: GaussianOracle, schedule: NoiseSchedule):
    """eps*(x_vp, t) in VP space at (possibly fractional) diffusers timestep t.

    Fractional t (Euler/Heun's interpolated timesteps) maps to sigma the way those schedulers
    map it (sigma linear in t between the integer steps), so the model is exact at the noise
    level the scheduler is at.
    """
    sig = schedule.sigmas.double()

    def eps(x_vp: torch.Tensor, t) -> torch.Tensor:
        t = float(t)
        lo = min(math.floor(t), len(sig) - 2)
        w = t - lo
        sigma = float(sig[lo] + w * (sig[lo + 1] - sig[lo]))
        alpha = 1.0 / math.sqrt(1.0 + sigma**2)
        x = x_vp.double() / alpha  # sigma-space sample
        return oracle.eps(x, torch.tensor(sigma)).to(x_vp.dtype)

    return eps


def make_scheduler(name: str, schedule: NoiseSchedule, spacing: str, karras: bool):
    cls_name, kwargs, _ = SCHEDULERS[name]
    cls = getattr(_diffusers(), cls_name)
    kw = dict(num_train_timesteps=schedule.num_steps,
              trained_betas=schedule.betas.double().numpy().tolist(),
              timestep_spacing=spacing, prediction_type="epsilon", **kwargs)
    if karras:
        kw["use_karras_sigmas"] = True
    return cls(**kw)


@torch.no_grad()
def diffusers_output_law(scheduler, oracle: GaussianOracle, schedule: NoiseSchedule,
                         steps: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mean, std, NFE) of ``scheduler``'s output from x_T = init_noise_sigma * z, exactly."""
    model = exact_eps_model(oracle, schedule)
    scheduler.set_timesteps(steps)
    z = torch.stack([torch.zeros(oracle.dim), torch.ones(oracle.dim)]).double()
    x = z * float(scheduler.init_noise_sigma)
    nfe = 0
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        eps = model(x_in, t)
        nfe += 1
        x = scheduler.step(eps, t, x).prev_sample
    mean, slope = x[0], x[1] - x[0]
    return mean, slope.abs(), nfe


def diffusers_configs(name: str) -> Iterator[tuple[str, str, bool]]:
    for spacing in SPACINGS:
        yield spacing, spacing, False
    if SCHEDULERS[name][2]:
        yield "karras", "linspace", True


def _best_per(results: Iterator[Result]) -> list[Result]:
    """The lowest-W2 result of each solver/scheduler name, in first-seen order."""
    best: dict[str, Result] = {}
    for r in results:
        if r.scheduler not in best or r.w2 < best[r.scheduler].w2:
            best[r.scheduler] = r
    return list(best.values())


def best_diffusers(oracle: GaussianOracle, schedule: NoiseSchedule, max_nfe: int) -> list[Result]:
    """Per diffusers scheduler: the configuration and step count with the lowest W2 among those
    that use at most ``max_nfe`` network evaluations."""

    def candidates() -> Iterator[Result]:
        for name in SCHEDULERS:
            for label, spacing, karras in diffusers_configs(name):
                for steps in range(1, max_nfe + 1):
                    try:
                        sched = make_scheduler(name, schedule, spacing, karras)
                        mean, std, nfe = diffusers_output_law(sched, oracle, schedule, steps)
                    except (ValueError, IndexError, RuntimeError, AssertionError):
                        continue  # a spacing/step count this scheduler refuses
                    if nfe <= max_nfe and torch.isfinite(mean).all():
                        yield Result(name, label, steps, nfe, oracle.w2(mean, std))

    return _best_per(candidates())


def best_ours(oracle: GaussianOracle, schedule: NoiseSchedule, max_nfe: int, solvers: dict,
              spacings: dict) -> list[Result]:
    """Per diffusion-lab solver: the spacing and step count with the lowest W2 within the budget
    (deterministic solvers only: stochastic ones need many samples to beat this)."""
    from diffusion_lab.samplers import solver_nfe

    def candidates() -> Iterator[Result]:
        for name, solver in solvers.items():
            for label, spacing in spacings.items():
                for steps in range(1, max_nfe + 1):
                    nfe = solver_nfe(solver, steps)
                    if nfe > max_nfe:
                        break
                    mean, std = affine_output_law(solver, oracle, spacing(schedule, steps), oracle.dim)
                    yield Result(name, label, steps, nfe, oracle.w2(mean, std))

    return _best_per(candidates())


def sampler_efficiency(max_nfe: int = 10, dim: int = 16, seed: int = 0) -> dict:
    """The table of ``best_ours`` and ``best_diffusers`` on the cosine and linear schedules,
    and the ratio of the two bests (worst case over the schedules)."""
    import functools

    from diffusion_lab.discretization import (
        KarrasSpacing,
        LeadingSpacing,
        LogSNRSpacing,
        QuadraticSpacing,
        UniformSpacing,
    )
    from diffusion_lab.samplers import ddim, dpmpp_2m, euler, heun
    from diffusion_lab.schedules import cosine_schedule, linear_schedule

    solvers = {"euler (= DDIM)": euler, "heun": heun, "dpmpp_2m": dpmpp_2m,
               "ddim eta=0": functools.partial(ddim, eta=0.0)}
    spacings = {"uniform": UniformSpacing(), "leading": LeadingSpacing(),
                "quadratic": QuadraticSpacing(), "log_snr": LogSNRSpacing(), "karras": KarrasSpacing()}
    oracle = GaussianOracle.random(dim=dim, seed=seed)
    rows, ratio = [], 0.0
    for name, make in (("cosine", cosine_schedule), ("linear", linear_schedule)):
        schedule = make()
        ours = best_ours(oracle, schedule, max_nfe, solvers, spacings)
        theirs = best_diffusers(oracle, schedule, max_nfe)
        for lib, results in (("diffusion-lab", ours), ("diffusers", theirs)):
            rows += [{"schedule": name, "library": lib, "solver": r.scheduler, "config": r.config,
                      "steps": r.steps, "nfe": r.nfe, "w2": round(r.w2, 4)} for r in results]
        ratio = max(ratio, min(r.w2 for r in ours) / min(r.w2 for r in theirs))
    return {"max_nfe": max_nfe, "dim": dim, "rows": rows, "ratio": round(ratio, 3)}
