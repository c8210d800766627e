"""Sigma grids fitted to one model and NFE, and the spacing that reads them back.

The fit (in the spirit of Align Your Steps, Sabour et al. 2024, with the simpler objective of
step-size distillation) places the interior levels of an n-step grid so that the few-step
solve lands where a fine solve of the *same model* from the same x_T lands:

    min over log sigma_1 > ... > log sigma_{n-2}  of  mean |solve(D, x_T, grid) - solve(D, x_T, fine)|^2

with sigma_0 = sigma_max and sigma_{n-1} = sigma_min fixed (the model's range), by coordinate
descent in log sigma (each level tried at fractions of the gap to its neighbours, shrinking the
fractions each sweep). Only the model is used, never data, so it applies to any checkpoint;
``scripts/optimize_grid.py`` fits a checkpoint and saves ``<ckpt stem>.grids.json`` beside it, which
``sampler/spacing=optimized`` (:class:`OptimizedSpacing`) reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser

__all__ = ["OptimizedSpacing", "fit_grid", "grid_file", "save_grids"]


def _solve(solver: Callable, denoiser: Denoiser, z: Tensor, sigmas: Tensor, cond) -> Tensor:
    return solver(denoiser, z * math.sqrt(1.0 + float(sigmas[0]) ** 2), sigmas, cond=cond)


def fit_grid(
    denoiser: Denoiser,
    solver: Callable,
    initial: Tensor,
    z: Tensor,
    *,
    cond: Tensor | None = None,
    reference: Tensor | None = None,
    fine: Tensor | None = None,
    sweeps: int = 3,
    fractions: tuple[float, ...] = (0.3, 0.45, 0.55, 0.7),
) -> tuple[Tensor, float, float]:
    """(fitted grid, initial loss, fitted loss) for ``solver`` from unit noise ``z`` (B, ...).

    ``initial``: a valid grid (steps + 1 levels, last 0) giving the step count and the fixed ends;
    ``reference``: the fine solve's output, or ``fine``: the fine grid to compute it with.
    """
    if reference is None:
        if fine is None:
            raise ValueError("give reference= (fine-solve samples) or fine= (a fine grid)")
        reference = _solve(solver, denoiser, z, fine, cond)
    ends = initial[0].item(), initial[-2].item()
    logs = torch.log(initial[:-1].double()).tolist()

    def to_grid(levels: list[float]) -> Tensor:
        interior = [math.exp(v) for v in levels[1:-1]]
        return torch.tensor([ends[0], *interior, ends[1], 0.0], dtype=torch.float64)

    def loss(levels: list[float]) -> float:
        out = _solve(solver, denoiser, z, to_grid(levels), cond)
        return (out.double() - reference.double()).pow(2).mean().item()

    start = best = loss(logs)
    for sweep in range(sweeps):
        shrink = 0.5**sweep
        for j in range(1, len(logs) - 1):
            hi, lo = logs[j - 1], logs[j + 1]
            for f in fractions:
                trial = logs.copy()
                target = hi + f * (lo - hi)
                trial[j] = logs[j] + shrink * (target - logs[j])
                value = loss(trial)
                if value < best:
                    best, logs = value, trial
    return to_grid(logs), start, best


def grid_file(ckpt: str | Path) -> Path:
    """``dir/last.ckpt`` -> ``dir/last.grids.json``."""
    ckpt = Path(ckpt)
    return ckpt.with_name(f"{ckpt.stem}.grids.json")


def save_grids(path: Path, grids: dict[int, Tensor], info: dict) -> None:
    """Merge ``grids`` (steps -> sigmas) into the JSON file at ``path`` (written atomically)."""
    data = json.loads(path.read_text()) if path.is_file() else {"grids": {}}
    data.update(info)
    data["grids"].update({str(n): [float(s) for s in g] for n, g in grids.items()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


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

    def __repr__(self) -> str:
        return f"OptimizedSpacing(path={self.path})"
