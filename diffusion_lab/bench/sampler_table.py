"""The sampler comparison: diffusion-lab's solvers against every diffusers configuration.

Cases (each at every NFE budget, on the linear and cosine schedules):
  gaussian  N(mu, diag(s^2)) data, dim 16, the exact predictor; error = exact W2 of the output law
            (floor printed: the error of the exact probability-flow ODE started from the VP prior
            at sigma_max, where accurate deterministic samplers meet: ``oracle.ode_prior_floor``).
  mixture   a 2-D ring of 8 Gaussians (std 0.05), the exact posterior-mean predictor; error =
            sliced W2 of ``samples`` samples to as many data samples (floor printed: the same
            distance between two data sample sets). Both libraries start from the same x_T noise.
Each method's configuration and step count are searched with the same procedure on both sides
(:func:`diffusion_lab.bench.search.best_within`). diffusion-lab's multistep solvers are also
offered ``optimized``: the grid :func:`diffusion_lab.optimized_grid.fit_grid` fits to the case's
model (what ``scripts/optimize_grid.py`` does for a checkpoint), from other noise draws.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from diffusion_lab.bench import diffusers_schedulers as dfs
from diffusion_lab.bench.diffusers_grid import rows as diffusers_rows
from diffusion_lab.bench.search import Result, best_within
from diffusion_lab.discretization import (
    KarrasSpacing,
    LeadingSpacing,
    LogSNRSpacing,
    QuadraticSpacing,
    UniformSpacing,
)
from diffusion_lab.mixture_oracle import GaussianMixtureOracle, sliced_w2
from diffusion_lab.optimized_grid import fit_grid
from diffusion_lab.oracle import GaussianOracle, affine_output_law, ode_prior_floor
from diffusion_lab.samplers import (
    ddpm,
    dpmpp_2m,
    dpmpp_2m_sde,
    dpmpp_2s,
    dpmpp_3m,
    euler,
    heun,
    solver_nfe,
    unipc,
)
from diffusion_lab.schedules import NoiseSchedule, cosine_schedule, linear_schedule

SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}
SPACINGS = {
    "uniform": UniformSpacing(), "leading": LeadingSpacing(), "quadratic": QuadraticSpacing(),
    "log_snr": LogSNRSpacing(), "karras": KarrasSpacing(),
    "log_snr(full tail)": LogSNRSpacing(skip_tail=False),
    "karras(full tail)": KarrasSpacing(skip_tail=False),
    # EDM's range top (Karras et al. 2022: sigma_max = 80 for data in [-1, 1]), the schedule's
    # sigma_min: a grid that spends no level above 80 (the schedules reach 157 and 20,291)
    "log_snr(max 80)": LogSNRSpacing(sigma_max=80.0), "karras(max 80)": KarrasSpacing(sigma_max=80.0),
}
_LOF = [{"lower_order_final": False}, {"lower_order_final": True}]
_SINGLESTEP = [{"variant": "midpoint"}, {"variant": "heun"}]
#: solvers also offered the grid fitted to the case's model (diffusion_lab.optimized_grid)
FITTED = ("dpmpp_2m", "dpmpp_3m", "unipc (bh2) 2", "unipc (bh2) 3")
#: solves each fit may spend (Nelder-Mead then Powell, diffusion_lab.optimized_grid)
FIT_EVALS = 1500


def our_rows() -> dict[str, tuple[Callable, list[dict]]]:
    """name -> (solver function, end configurations of its keyword options)."""
    out = {"euler (= DDIM)": (euler, []), "heun": (heun, []), "dpmpp_2m": (dpmpp_2m, []),
           "dpmpp_2s": (dpmpp_2s, _SINGLESTEP),
           "dpmpp_3m": (dpmpp_3m, _LOF), "dpmpp_2m_sde": (dpmpp_2m_sde, []), "ddpm": (ddpm, [])}
    for variant in ("bh1", "bh2"):
        for order in (1, 2, 3):
            out[f"unipc ({variant}) {order}"] = (
                functools.partial(unipc, order=order, variant=variant), _LOF)
    return out


class Case:
    """Error of a sampler on one case and schedule: ``ours(solver, sigmas)``, ``theirs(sched, n)``."""

    def __init__(self, name: str, schedule: NoiseSchedule, samples: int = 10_000, seed: int = 0):
        self.name, self.schedule, self.floor, self.seed = name, schedule, None, seed
        self._fitted: dict = {}
        if name == "gaussian":
            self.oracle = GaussianOracle.random(dim=16, seed=seed)
            self.floor = ode_prior_floor(self.oracle, float(schedule.sigma_max))
        elif name == "mixture":
            self.oracle = GaussianMixtureOracle.ring()
            g = torch.Generator().manual_seed(seed)
            self.z = torch.randn(samples, self.oracle.dim, generator=g, dtype=torch.float64)
            self.data = self.oracle.sample(samples, seed + 1)
            self.floor = sliced_w2(self.oracle.sample(samples, seed + 2), self.data)
        else:
            raise ValueError(f"unknown case {name!r}: gaussian or mixture")

    def fitted_grid(self, solver: Callable, steps: int, method: str = "") -> torch.Tensor:
        """The grid :func:`fit_grid` fits for ``solver`` on this case's model: a fine solve of
        the model itself from 256 other noise draws (seed + 100) is the target, never data.
        Fitted once per method and step count (its end options reuse the grid)."""
        key = (method or repr(solver), steps)
        if key not in self._fitted:
            g = torch.Generator().manual_seed(self.seed + 100)
            z = torch.randn(256, self.oracle.dim, generator=g, dtype=torch.float64)
            self._fitted[key] = fit_grid(self.oracle, solver, LogSNRSpacing()(self.schedule, steps),
                                         z, fine=LogSNRSpacing()(self.schedule, 400),
                                         max_evals=FIT_EVALS)[0]
        return self._fitted[key]

    def ours(self, solver: Callable, sigmas: torch.Tensor) -> float:
        if self.name == "gaussian":
            return self.oracle.w2(*affine_output_law(solver, self.oracle, sigmas, self.oracle.dim))
        g = torch.Generator().manual_seed(self.seed + 3)
        x = self.z * math.sqrt(1.0 + float(sigmas[0]) ** 2)
        out = solver(self.oracle, x, sigmas,
                     noise=lambda like: torch.randn(like.shape, generator=g, dtype=like.dtype))
        return sliced_w2(out, self.data)

    def theirs(self, scheduler, steps: int) -> float:
        if self.name == "gaussian":
            mean, std, _ = dfs.diffusers_output_law(scheduler, self.oracle, self.schedule, steps)
            return self.oracle.w2(mean, std)
        out = dfs.diffusers_samples(scheduler, self.oracle, self.schedule, steps, self.z,
                                    self.seed + 3)
        return sliced_w2(out, self.data)


def our_configuration(case, name: str, cfg: dict, steps: int) -> tuple[Callable, torch.Tensor]:
    """(solver with its keyword options, sigma grid) of our method ``name`` in configuration
    ``cfg`` (``spacing`` plus the solver's options) at ``steps`` steps, on ``case``."""
    solver = our_rows()[name][0]
    kw = {k: v for k, v in cfg.items() if k != "spacing"}
    fn = functools.partial(solver, **kw) if kw else solver
    if cfg["spacing"] == "optimized":
        return fn, case.fitted_grid(fn, steps, name)
    return fn, SPACINGS[cfg["spacing"]](case.schedule, steps)


def their_scheduler(case, name: str, cfg: dict):
    """diffusers' scheduler of row ``name`` in configuration ``cfg``, on ``case``'s schedule."""
    row = next(r for r in diffusers_rows() if r.name == name)
    return dfs.build(row, cfg, case.schedule)


def _announce(progress, side: str, names: list[str]):
    """Yields ``names`` in order, telling ``progress`` (a print function, or None) which one of
    how many ``side`` is searching: the search of one method takes minutes on a checkpoint."""
    for i, name in enumerate(names, 1):
        if progress is not None:
            progress(f"  {side} {i}/{len(names)}: {name}")
        yield name


def best_ours(case, budgets, names=None, keep=2, depth=2, progress=None) -> list[dict[int, Result]]:
    out = []
    rows = our_rows()
    for name in _announce(progress, "diffusion-lab",
                          [n for n in rows if names is None or n in names]):
        solver, end = rows[name]

        def evaluate(cfg, steps, name=name):
            return case.ours(*our_configuration(case, name, cfg, steps))

        grid = [{"spacing": s} for s in SPACINGS]
        if name in FITTED or name in getattr(case, "fitted", {}):  # a checkpoint's own fits
            grid.append({"spacing": "optimized"})
        out.append(best_within(name, evaluate, lambda cfg, n, s=solver: solver_nfe(s, n),
                               grid, end, budgets, keep=keep, depth=depth))
    return out


def best_diffusers(case: Case, budgets, names=None, keep=2, depth=2,
                   progress=None) -> list[dict[int, Result]]:
    out = []
    rows = {row.name: row for row in diffusers_rows() if names is None or row.name in names}
    for name in _announce(progress, "diffusers", list(rows)):
        row = rows[name]
        built: dict[str, object] = {}

        def make(cfg, row=row, built=built):
            key = repr(sorted(cfg.items()))
            if key not in built:
                built[key] = dfs.build(row, cfg, case.schedule)
            return built[key]

        out.append(best_within(
            row.name, lambda cfg, n, make=make: case.theirs(make(cfg), n),
            lambda cfg, n, make=make: dfs.nfe_of(make(cfg), n),
            row.grid_configs(), row.end_configs(), budgets, keep=keep, depth=depth))
    return out


def comparison(budgets=(5, 10, 20), cases=("gaussian", "mixture"), schedules=("linear", "cosine"),
               samples: int = 10_000, seed: int = 0, ours=None, theirs=None, progress=None) -> dict:
    """Every method's best per budget, the winner of each library, and best-ours / best-theirs.
    ``ours`` / ``theirs``: method names to keep (default all); ``progress``: print function."""
    rows, winners = [], []
    for case_name in cases:
        for sched_name in schedules:
            if progress is not None:
                progress(f"sampler table: {case_name} data, {sched_name} schedule")
            case = Case(case_name, SCHEDULES[sched_name](), samples, seed)
            sides = {"diffusion-lab": best_ours(case, budgets, ours, progress=progress),
                     "diffusers": best_diffusers(case, budgets, theirs, progress=progress)}
            for budget in budgets:
                best = {}
                for lib, results in sides.items():
                    found = [r[budget] for r in results if budget in r]
                    rows += [{"case": case_name, "schedule": sched_name, "budget": budget,
                              "library": lib, "method": r.method, "config": r.config,
                              "steps": r.steps, "nfe": r.nfe, "error": r.error} for r in found]
                    best[lib] = min(found, key=lambda r: r.error)
                ratio = best["diffusion-lab"].error / best["diffusers"].error
                winners.append({"case": case_name, "schedule": sched_name, "budget": budget,
                                "floor": case.floor, "ratio": ratio,
                                **{lib: vars(r) for lib, r in best.items()}})
    return {"budgets": list(budgets), "samples": samples, "seed": seed, "rows": rows,
            "winners": winners}


def format_winners(table: dict) -> str:
    lines = ["case      schedule  NFE  best diffusion-lab (error)  |  best diffusers (error)  | ratio"]
    for w in table["winners"]:
        ours, theirs = w["diffusion-lab"], w["diffusers"]
        floor = "" if w["floor"] is None else f"  [floor {w['floor']:.4f}]"
        lines.append(
            f"{w['case']:9s} {w['schedule']:8s} {w['budget']:3d}  "
            f"{ours['method']} [{ours['config']}; {ours['steps']} steps] {ours['error']:.4g}  |  "
            f"{theirs['method']} [{theirs['config']}; {theirs['steps']} steps] "
            f"{theirs['error']:.4g}  | {w['ratio']:.3f}{floor}")
    return "\n".join(lines)
