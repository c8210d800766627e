"""Case 3 of the sampler comparison: a trained model, both libraries driving the same network.

The search (the same :func:`diffusion_lab.bench.search.best_within` procedure for both libraries,
as on the exact cases) ranks configurations by their *solver error on this model*:

    error = sqrt(mean |solve(D, x_T, grid) - solve(D, x_T, fine)|^2)      (per pixel, in [-1, 1])

from the same x_T for ``search_samples`` class-balanced samples, where the fine solve is
DPM-Solver++(2M) with ``fine_steps`` steps on the log-SNR grid (the probability-flow ODE's
solution to ~1e-4). Stochastic samplers do not aim at the ODE's solution, so this measure
disfavours them; the final scores below do not.

The winners of each library per NFE budget are then scored by what a user looks at: the
project's judge (FID in its classifier's feature space and the share of samples recognised as
their class) on ``score_samples`` class-balanced samples from fixed per-sample seeds, the same
x_T for every configuration (``PerSampleNoise`` stream 0; step noise stream 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from diffusion_lab.bench.diffusers_adapter import run_scheduler
from diffusion_lab.bench.sampler_table import (
    best_diffusers,
    best_ours,
    our_configuration,
    their_scheduler,
)
from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import INITIAL_NOISE_STREAM, STEP_NOISE_STREAM
from diffusion_lab.samplers import dpmpp_2m
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser

__all__ = ["CheckpointCase", "checkpoint_comparison"]


class CheckpointCase:
    """``ours(solver, sigmas)`` / ``theirs(scheduler, steps)``: RMS distance to the fine solve.

    ``fitted``: {table method name: {steps: sigma grid}} read from the checkpoint's grids file
    (``scripts/optimize_grid.py``); only those (method, steps) are offered ``optimized``.
    """

    name = "checkpoint"
    floor = None

    def __init__(
        self,
        denoiser: Denoiser,
        schedule: NoiseSchedule,
        shape: Sequence[int],
        num_classes: int,
        *,
        fitted: dict[str, dict[int, Tensor]] | None = None,
        search_samples: int = 64,
        fine_steps: int = 500,
        seed: int = 0,
    ) -> None:
        self.denoiser, self.schedule, self.seed = denoiser, schedule, seed
        self.shape, self.num_classes = tuple(int(s) for s in shape), num_classes
        self.fitted = fitted or {}
        self.z, self.cond = self.noise_and_labels(search_samples)
        fine = LogSNRSpacing()(schedule, fine_steps)
        self.reference = self._ours_samples(dpmpp_2m, fine, self.z, self.cond, range(len(self.z)))

    def noise_and_labels(self, count: int) -> tuple[Tensor, Tensor | None]:
        """Unit x_T noise of samples 0..count-1 and class-balanced labels (i mod classes)."""
        z = PerSampleNoise(self.seed, range(count), stream=INITIAL_NOISE_STREAM).sample(
            (count, *self.shape), "cpu", torch.float32)
        cond = torch.arange(count) % self.num_classes if self.num_classes > 0 else None
        return z, cond

    def _ours_samples(self, solver: Callable, sigmas: Tensor, z: Tensor, cond, indices) -> Tensor:
        step_noise = PerSampleNoise(self.seed, indices, stream=STEP_NOISE_STREAM)
        x = z * math.sqrt(1.0 + float(sigmas[0]) ** 2)
        with torch.no_grad():
            return solver(self.denoiser, x, sigmas, cond=cond, noise=step_noise).float()

    def _theirs_samples(self, scheduler, steps: int, z: Tensor, cond, indices) -> Tensor:
        step_noise = PerSampleNoise(self.seed, indices, stream=STEP_NOISE_STREAM)
        return run_scheduler(scheduler, self.denoiser, self.schedule, steps, z, cond, step_noise)

    def _distance(self, x: Tensor) -> float:
        return (x.double() - self.reference.double()).pow(2).mean().sqrt().item()

    def fitted_grid(self, solver: Callable, steps: int, method: str = "") -> Tensor:
        grids = self.fitted.get(method, {})
        if steps not in grids:
            raise ValueError(f"no fitted {steps}-step grid for {method}")  # skipped by the search
        return grids[steps]

    def ours(self, solver: Callable, sigmas: Tensor) -> float:
        return self._distance(self._ours_samples(solver, sigmas, self.z, self.cond,
                                                 range(len(self.z))))

    def theirs(self, scheduler, steps: int) -> float:
        return self._distance(self._theirs_samples(scheduler, steps, self.z, self.cond,
                                                   range(len(self.z))))

    def samples(self, count: int, *, solver: Callable | None = None, sigmas: Tensor | None = None,
                scheduler=None, steps: int | None = None, batch: int = 500) -> Tensor:
        """``count`` class-balanced samples of one configuration (ours: solver + sigmas; theirs:
        scheduler + steps), in batches, from the fixed per-sample seeds."""
        z, cond = self.noise_and_labels(count)
        out = []
        for lo in range(0, count, batch):
            idx = range(lo, min(count, lo + batch))
            c = None if cond is None else cond[lo:idx.stop]
            if scheduler is None:
                out.append(self._ours_samples(solver, sigmas, z[lo:idx.stop], c, idx))
            else:
                out.append(self._theirs_samples(scheduler, steps, z[lo:idx.stop], c, idx))
        return torch.cat(out)


def checkpoint_comparison(case: CheckpointCase, judge, budgets=(5, 10, 20), *, ours=None,
                          theirs=None, finalists: int = 3, score_samples: int = 1000,
                          keep: int = 2, depth: int = 2, progress=None) -> dict:
    """Each library's ``finalists`` lowest-distance configurations per budget, scored by the judge
    on ``score_samples`` samples; the winner of each library is its lowest FID."""
    say = progress or (lambda _msg: None)
    say("searching diffusion-lab's configurations")
    found = {"diffusion-lab": best_ours(case, budgets, ours, keep=keep, depth=depth,
                                                progress=progress)}
    say("searching diffusers' configurations")
    found["diffusers"] = best_diffusers(case, budgets, theirs, keep=keep, depth=depth,
                                           progress=progress)
    labels = case.noise_and_labels(score_samples)[1]
    rows, winners = [], []
    for budget in budgets:
        best = {}
        for lib, results in found.items():
            ranked = sorted((r[budget] for r in results if budget in r), key=lambda r: r.error)
            for r in ranked[:finalists]:
                say(f"scoring {lib} {r.method} [{r.config}; {r.steps} steps] on {score_samples}")
                if lib == "diffusion-lab":
                    fn, sigmas = our_configuration(case, r.method, r.options, r.steps)
                    x = case.samples(score_samples, solver=fn, sigmas=sigmas)
                else:
                    x = case.samples(score_samples, steps=r.steps,
                                     scheduler=their_scheduler(case, r.method, r.options))
                row = {"budget": budget, "library": lib, "method": r.method, "config": r.config,
                       "steps": r.steps, "nfe": r.nfe, "distance": r.error,
                       "fid": judge.fid(x), "accuracy": judge.accuracy(x, labels)}
                rows.append(row)
                if lib not in best or row["fid"] < best[lib]["fid"]:
                    best[lib] = row
        winners.append({"budget": budget, **best,
                        "fid_ratio": best["diffusion-lab"]["fid"] / best["diffusers"]["fid"]})
    return {"budgets": list(budgets), "score_samples": score_samples, "seed": case.seed,
            "search_samples": len(case.z), "rows": rows, "winners": winners}


def format_checkpoint_winners(table: dict) -> str:
    head = ("NFE  best diffusion-lab: FID / accuracy  |  best diffusers: FID / accuracy  | FID ratio"
            f"   ({table['score_samples']} samples, seed {table['seed']})")
    lines = [head]
    for w in table["winners"]:
        ours, theirs = w["diffusion-lab"], w["diffusers"]
        lines.append(
            f"{w['budget']:3d}  {ours['method']} [{ours['config']}; {ours['steps']} steps] "
            f"{ours['fid']:.4g} / {ours['accuracy']:.3f}  |  {theirs['method']} "
            f"[{theirs['config']}; {theirs['steps']} steps] {theirs['fid']:.4g} / "
            f"{theirs['accuracy']:.3f}  | {w['fid_ratio']:.3f}")
    return "\n".join(lines)
