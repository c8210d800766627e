"""Sigma grids fitted to one model and NFE, and the spacing that reads them back.

The fit (in the spirit of Align Your Steps, Sabour et al. 2024, with the simpler objective of
step-size distillation) places the interior levels of an n-step grid so that the few-step
solve lands where a fine solve of the *same model* from the same x_T lands:

    min over log sigma_1 > ... > log sigma_{n-2}  of  mean |solve(D, x_T, grid) - solve(D, x_T, fine)|^2

with sigma_0 = sigma_max and sigma_{n-1} = sigma_min fixed (the model's range), or, with
``fit_ends``, those two fitted as well within that range. Any other function of the few-step
samples can take the distance's place (``objective``): e.g. the Frechet distance of their
features to the training data's,

    min over the levels of  FID(solve(D, x_T, grid) for the fit's x_T draws)

which aims the grid at the data rather than at the model's own ODE solution (the search of
AutoDiffusion, Li et al. 2023, over the time steps of a fixed sampler). Two searches:
``simplex`` (default): Nelder-Mead over the sorted interior log sigmas, then Powell's method from
where it stopped, both derivative-free, so any solver and any network fits; ``coordinate``: each
level tried at fractions of the gap to its neighbours, the fractions shrinking each sweep (fewer
solves, but it stops in local optima at few steps). ``max_evals`` bounds the solves either way.
Only the model is used, never data, so it applies to any checkpoint;
``scripts/optimize_grid.py`` fits a checkpoint and saves ``<ckpt stem>.grids.json`` beside it, which
``sampler/spacing=optimized`` (:class:`OptimizedSpacing`) reads.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser

__all__ = ["OptimizedSpacing", "fit_grid", "grid_file", "grid_loss", "save_grids",
           "solver_signature"]


def _solve(solver: Callable, denoiser: Denoiser, z: Tensor, sigmas: Tensor, cond) -> Tensor:
    return solver(denoiser, z * math.sqrt(1.0 + float(sigmas[0]) ** 2), sigmas, cond=cond)


def grid_loss(solver: Callable, denoiser: Denoiser, z: Tensor, grid: Tensor,
              reference: Tensor | None, cond=None,
              objective: Callable[[Tensor], float] | None = None) -> float:
    """The fit's loss for one grid: mean |solve(D, x_T, grid) - reference|^2, or
    ``objective(solve(D, x_T, grid))`` when an objective is given (inf where not finite)."""
    out = _solve(solver, denoiser, z, grid, cond)
    if objective is not None:
        value = float(objective(out))
    else:
        value = (out.double() - reference.double()).pow(2).mean().item()
    return value if math.isfinite(value) else math.inf


def fit_grid(
    denoiser: Denoiser,
    solver: Callable,
    initial: Tensor,
    z: Tensor,
    *,
    cond: Tensor | None = None,
    reference: Tensor | None = None,
    fine: Tensor | None = None,
    method: str = "simplex",
    max_evals: int | None = None,
    sweeps: int = 3,
    fractions: tuple[float, ...] = (0.3, 0.45, 0.55, 0.7),
    fit_ends: tuple[float, float] | None = None,
    objective: Callable[[Tensor], float] | None = None,
    on_trial: Callable[[float], None] | None = None,
) -> tuple[Tensor, float, float]:
    """(fitted grid, initial loss, fitted loss) for ``solver`` from unit noise ``z`` (B, ...).

    ``initial``: a valid grid (steps + 1 levels, last 0) giving the step count, the fixed ends and
    the search's start; ``reference``: the fine solve's output, or ``fine``: the fine grid to
    compute it with; ``method``: ``simplex`` or ``coordinate`` (``sweeps``/``fractions`` are its
    settings); ``max_evals``: at most this many solves (default: 300 per free level).
    ``fit_ends=(sigma_min, sigma_max)``: the first and the last positive level are fitted too,
    within that range (``simplex`` only): the solve may start below sigma_max, from
    x = sqrt(1 + sigma_0^2) z as every sampler does, and take its last step to 0 from above
    sigma_min, where a fixed sigma_min spends an evaluation on noise no model can see.
    ``objective(samples) -> float``: minimised in place of the distance to the fine solve (then
    neither ``reference`` nor ``fine`` is needed); the solver must be deterministic or draw its
    noise the same way at every call, so that the objective is a function of the grid.
    ``on_trial(loss)``: called after each solve (e.g. to advance a progress bar).
    """
    if method not in ("simplex", "coordinate"):
        raise ValueError(f"method={method!r}: simplex or coordinate")
    if fit_ends is not None and method != "simplex":
        raise ValueError("fit_ends needs method='simplex'")
    if objective is None and reference is None:
        if fine is None:
            raise ValueError("give reference= (fine-solve samples) or fine= (a fine grid)")
        reference = _solve(solver, denoiser, z, fine, cond)
    ends = initial[0].item(), initial[-2].item()
    low, high = fit_ends or (ends[1], ends[0])  # the range every level stays inside
    free = initial[:-1] if fit_ends is not None else initial[1:-2]
    logs = torch.log(free.double()).tolist()  # the free levels, descending
    budget = max_evals if max_evals is not None else 300 * max(1, len(logs))

    def to_grid(levels) -> Tensor:
        levels = sorted((math.exp(v) for v in levels), reverse=True)
        if fit_ends is None:
            levels = [ends[0], *levels, ends[1]]
        else:  # the ends held inside the range (exp(log(sigma_max)) may exceed it by an ulp)
            levels = [min(high, max(low, v)) for v in levels]
        return torch.tensor([*levels, 0.0], dtype=torch.float64)

    def loss(levels) -> float:
        grid = to_grid(levels)
        if bool((grid[:-2] <= grid[1:-1]).any()):
            return math.inf  # a level outside (sigma_min, sigma_max) or two levels equal
        value = grid_loss(solver, denoiser, z, grid, reference, cond, objective)
        if on_trial is not None:
            on_trial(value)
        return value

    start = loss(logs)
    if not logs:
        return to_grid(logs), start, start
    if method == "coordinate":
        best, logs = _coordinate_descent(loss, logs, ends, start, sweeps, fractions, budget)
    else:
        simplex = None
        if fit_ends is not None:  # each first move inwards: an end at its bound must move in
            middle, step = (math.log(low) + math.log(high)) / 2, 0.05 * math.log(high / low)
            simplex = [list(logs)] + [
                [v + (step if v < middle else -step) * (i == j) for j, v in enumerate(logs)]
                for i in range(len(logs))]
        best, logs = _simplex_then_powell(loss, logs, start, budget, simplex)
    return to_grid(logs), start, best


def checked_on_held_out(start: Tensor, fitted: Tensor,
                        held_out_loss: Callable[[Tensor], float]) -> tuple[Tensor, list[float]]:
    """(grid to keep, [held-out loss of start, of fitted]): the fitted grid only where it beats
    the grid its search started from on noise the fit never saw, ``held_out_loss(grid)`` (the
    same loss on another draw); otherwise the start, since a fit that followed its own draw
    (a few thousandths of FID at a few thousand samples) would make sampling worse, not better."""
    losses = [held_out_loss(start), held_out_loss(fitted)]
    return (fitted if losses[1] < losses[0] else start), losses


def _simplex_then_powell(loss: Callable, logs: list[float], start: float, budget: int,
                         simplex: list[list[float]] | None = None):
    """Nelder-Mead from ``logs`` (or from ``simplex``, its first vertices), then Powell from its
    result; (best loss, levels)."""
    from scipy.optimize import minimize

    best, levels = start, list(logs)
    used = 0
    for name in ("Nelder-Mead", "Powell"):
        left = budget - used
        if left <= 0:
            break
        result = minimize(loss, levels, method=name,
                          options={"maxfev": left, "xtol": 1e-4, "ftol": 1e-12}
                          if name == "Powell" else {"maxfev": left, "xatol": 1e-4, "fatol": 0.0,
                                                    "initial_simplex": simplex})
        used += int(result.nfev)
        if float(result.fun) < best:
            best, levels = float(result.fun), [float(v) for v in result.x]
    return best, levels


def _coordinate_descent(loss, logs, ends, start, sweeps, fractions, budget):
    """Each interior level moved towards fractions of its neighbours' gap; (best loss, levels)."""
    full = [math.log(ends[0]), *logs, math.log(ends[1])]
    best, used = start, 0
    for sweep in range(sweeps):
        shrink = 0.5**sweep
        for j in range(1, len(full) - 1):
            hi, lo = full[j - 1], full[j + 1]
            for f in fractions:
                if used >= budget:
                    return best, full[1:-1]
                trial = full.copy()
                trial[j] = full[j] + shrink * (hi + f * (lo - hi) - full[j])
                value = loss(trial[1:-1])
                used += 1
                if value < best:
                    best, full = value, trial
    return best, full[1:-1]


def grid_file(ckpt: str | Path) -> Path:
    """``dir/last.ckpt`` -> ``dir/last.grids.json``."""
    ckpt = Path(ckpt)
    return ckpt.with_name(f"{ckpt.stem}.grids.json")


def solver_signature(solver: Callable) -> str:
    """A solver's name with every keyword option it runs with, defaults filled in:
    ``partial(unipc, order=3)`` -> ``unipc(corrector=True, lower_order_final=False, order=3,
    variant='bh2')``.
    Two solvers with the same signature take the same steps on the same grid."""
    fn, options = solver, {}
    while isinstance(fn, functools.partial):
        options = {**fn.keywords, **options}
        fn = fn.func
    params = {name: p.default for name, p in inspect.signature(fn).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY
              and name not in ("cond", "callback", "noise")}
    params.update(options)
    return f"{fn.__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(params.items()))})"


def save_grids(path: Path, grids: dict[int, Tensor], info: dict) -> bool:
    """Merge ``grids`` (steps -> sigmas) into the JSON file at ``path`` (written atomically).
    Grids fitted for another solver, guidance scale or objective (``info``'s
    ``solver_signature``, ``guidance_scale``, ``objective``; a file without ``objective`` holds
    ``distance`` grids) are replaced, not merged: one file holds one solver's grids of one fit.
    The ``fit_loss`` and ``holdout`` (held-out check) of each step count are kept beside its
    grid. Returns True when earlier grids were replaced so."""
    data = json.loads(path.read_text()) if path.is_file() else {"grids": {}}
    keys = {"solver_signature": None, "guidance_scale": None, "objective": "distance"}
    replaced = bool(data["grids"]) and any(
        k in info and data.get(k, default) != info[k] for k, default in keys.items())
    if replaced:
        data = {"grids": {}}
    per_steps = {k: {**data.get(k, {}), **info.get(k, {})} for k in ("fit_loss", "holdout")}
    data.update(info)
    data.update({k: v for k, v in per_steps.items() if v})
    data["grids"].update({str(n): [float(s) for s in g] for n, g in grids.items()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return replaced


class OptimizedSpacing:
    """The grid fitted for this checkpoint and step count (``<ckpt stem>.grids.json``).

    ``path``: the checkpoint (its grids file is looked up beside it) or the grids file itself.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)

    def _file(self) -> Path:
        if self.path is None:
            raise ValueError("sampler/spacing=optimized needs a checkpoint (ckpt=...) whose grids "
                             "scripts/optimize_grid.py has fitted")
        return self.path if self.path.suffix == ".json" else grid_file(self.path)

    def __call__(self, schedule: NoiseSchedule, num_steps: int) -> Tensor:
        path = self._file()
        grids = json.loads(path.read_text()).get("grids", {}) if path.is_file() else {}
        if str(int(num_steps)) not in grids:
            raise ValueError(
                f"no optimized {num_steps}-step grid in {path} (fitted: {sorted(map(int, grids))}): "
                f"run python scripts/optimize_grid.py CKPT --steps {num_steps}")
        sigmas = torch.tensor(grids[str(int(num_steps))], dtype=torch.float64)
        if sigmas[-1] != 0 or bool((sigmas[:-1] <= sigmas[1:]).any()):
            raise ValueError(f"{path}: the {num_steps}-step grid is not strictly descending to 0")
        if sigmas[0] > schedule.sigma_max * (1 + 1e-9) or sigmas[-2] < schedule.sigma_min * (1 - 1e-9):
            raise ValueError(f"{path}: the {num_steps}-step grid leaves this schedule's sigma range")
        return sigmas

    def check_solver(self, solver: Callable) -> None:
        """Warn when the grids were fitted for another solver than ``solver`` (a grid is fitted
        to one solver's steps; another solver on it is valid but not what was optimised)."""
        path = None if self.path is None else self._file()
        if path is None or not path.is_file():
            return
        fitted_for = json.loads(path.read_text()).get("solver_signature")
        if fitted_for is not None and fitted_for != solver_signature(solver):
            warnings.warn(f"{path}: the grids were fitted for {fitted_for}, sampling with "
                          f"{solver_signature(solver)}", stacklevel=2)

    def __repr__(self) -> str:
        return f"OptimizedSpacing(path={self.path})"
