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
x_T for every configuration (``PerSampleNoise`` stream 0; step noise stream 1). With several
``score_seeds`` each configuration is scored once per seed (the same seeds for every
configuration) and ranked by its mean FID; the spread over seeds says which differences are
larger than the sample noise. :func:`rescore` re-scores a saved table's finalists that way,
beside the project's default sampler with and without the cosine-tail skip.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from diffusion_lab.bench.diffusers_adapter import run_scheduler
from diffusion_lab.bench.sampler_table import (
    best_diffusers,
    best_ours,
    our_configuration,
    our_rows,
    their_scheduler,
)
from diffusion_lab.bench.search import REFUSED, describe
from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import INITIAL_NOISE_STREAM, STEP_NOISE_STREAM
from diffusion_lab.samplers import dpmpp_2m, solver_nfe
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser

__all__ = ["CheckpointCase", "checkpoint_comparison", "parse_config", "rescore"]


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
        score_batch: int = 500,
    ) -> None:
        self.denoiser, self.schedule, self.seed = denoiser, schedule, seed
        self.score_batch = score_batch
        self.shape, self.num_classes = tuple(int(s) for s in shape), num_classes
        self.fitted = fitted or {}
        self.z, self.cond = self.noise_and_labels(search_samples)
        self.fine_steps = fine_steps

    @functools.cached_property
    def reference(self) -> Tensor:
        """The fine solve of the search samples, made on the first distance asked for (scoring
        alone, as in :func:`rescore`, never needs it)."""
        fine = LogSNRSpacing()(self.schedule, self.fine_steps)
        return self._ours_samples(dpmpp_2m, fine, self.z, self.cond, range(len(self.z)), self.seed)

    def noise_and_labels(self, count: int, seed: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Unit x_T noise of samples 0..count-1 (per-sample seeds from ``seed``, default the
        case's) and class-balanced labels (i mod classes)."""
        seed = self.seed if seed is None else seed
        z = PerSampleNoise(seed, range(count), stream=INITIAL_NOISE_STREAM).sample(
            (count, *self.shape), "cpu", torch.float32)
        cond = torch.arange(count) % self.num_classes if self.num_classes > 0 else None
        return z, cond

    def _ours_samples(self, solver: Callable, sigmas: Tensor, z: Tensor, cond, indices,
                      seed: int) -> Tensor:
        step_noise = PerSampleNoise(seed, indices, stream=STEP_NOISE_STREAM)
        x = z * math.sqrt(1.0 + float(sigmas[0]) ** 2)
        with torch.no_grad():
            return solver(self.denoiser, x, sigmas, cond=cond, noise=step_noise).float()

    def _theirs_samples(self, scheduler, steps: int, z: Tensor, cond, indices,
                        seed: int) -> Tensor:
        step_noise = PerSampleNoise(seed, indices, stream=STEP_NOISE_STREAM)
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
                                                 range(len(self.z)), self.seed))

    def theirs(self, scheduler, steps: int) -> float:
        return self._distance(self._theirs_samples(scheduler, steps, self.z, self.cond,
                                                   range(len(self.z)), self.seed))

    def samples(self, count: int, *, solver: Callable | None = None, sigmas: Tensor | None = None,
                scheduler=None, steps: int | None = None, batch: int | None = None,
                seed: int | None = None) -> Tensor:
        """``count`` class-balanced samples of one configuration (ours: solver + sigmas; theirs:
        scheduler + steps), in batches, from the fixed per-sample seeds of ``seed`` (default
        the case's); ``batch`` samples per network call (default: the case's ``score_batch``;
        the samples depend on it only through float rounding)."""
        seed = self.seed if seed is None else seed
        batch = batch or self.score_batch
        z, cond = self.noise_and_labels(count, seed)
        out = []
        for lo in range(0, count, batch):
            idx = range(lo, min(count, lo + batch))
            c = None if cond is None else cond[lo:idx.stop]
            if scheduler is None:
                out.append(self._ours_samples(solver, sigmas, z[lo:idx.stop], c, idx, seed))
            else:
                out.append(self._theirs_samples(scheduler, steps, z[lo:idx.stop], c, idx, seed))
        return torch.cat(out)


def score_configuration(case: CheckpointCase, judge, library: str, method: str, options: dict,
                        steps: int, count: int, seeds: Sequence[int]) -> dict:
    """FID and accuracy of one configuration on ``count`` samples at each of ``seeds``: the
    means (``fid``, ``accuracy``), the per-seed values and the FID's standard deviation over
    seeds (0 for one seed)."""
    if library == "diffusion-lab":
        fn, sigmas = our_configuration(case, method, options, steps)
        configuration = {"solver": fn, "sigmas": sigmas}
    else:
        configuration = {"scheduler": their_scheduler(case, method, options), "steps": steps}
    labels = case.noise_and_labels(count)[1]  # class i mod classes, the same at every seed
    fids, accuracies = [], []
    for seed in seeds:
        x = case.samples(count, seed=seed, **configuration)
        fids.append(float(judge.fid(x)))
        accuracies.append(float(judge.accuracy(x, labels)))
    return {"fid": statistics.fmean(fids), "accuracy": statistics.fmean(accuracies),
            "fid_std": statistics.stdev(fids) if len(fids) > 1 else 0.0, "fids": fids,
            "accuracies": accuracies, "seeds": list(seeds)}


def winners_of(rows: list[dict], budgets) -> list[dict]:
    """Per budget, each library's row of lowest (mean) FID and the ratio ours / theirs (None
    when a library has no row at that budget)."""
    winners = []
    for budget in budgets:
        best = {}
        for row in rows:
            lib = row["library"]
            if row["budget"] == budget and (lib not in best or row["fid"] < best[lib]["fid"]):
                best[lib] = row
        both = "diffusion-lab" in best and "diffusers" in best
        winners.append({"budget": budget, **best, "fid_ratio":
                        best["diffusion-lab"]["fid"] / best["diffusers"]["fid"] if both else None})
    return winners


def checkpoint_comparison(case: CheckpointCase, judge, budgets=(5, 10, 20), *, ours=None,
                          theirs=None, finalists: int = 3, score_samples: int = 1000,
                          keep: int = 2, depth: int = 2, progress=None,
                          score_seeds: Sequence[int] | None = None, on_row=None) -> dict:
    """Each library's ``finalists`` lowest-distance configurations per budget, scored by the judge
    on ``score_samples`` samples at each of ``score_seeds`` (default: the case's seed); the
    winner of each library is its lowest mean FID. ``on_row(table)``, if given, receives the
    table so far (``"partial": True``) after each scored row, e.g. to save it."""
    say = progress or (lambda _msg: None)
    seeds = list(score_seeds) if score_seeds else [case.seed]
    say("searching diffusion-lab's configurations")
    found = {"diffusion-lab": best_ours(case, budgets, ours, keep=keep, depth=depth,
                                                progress=progress)}
    say("searching diffusers' configurations")
    found["diffusers"] = best_diffusers(case, budgets, theirs, keep=keep, depth=depth,
                                           progress=progress)
    rows = []

    def assemble() -> dict:
        return {"budgets": list(budgets), "score_samples": score_samples, "seed": case.seed,
                "score_seeds": seeds, "search_samples": len(case.z), "rows": rows,
                "winners": winners_of(rows, budgets)}

    for budget in budgets:
        for lib, results in found.items():
            ranked = sorted((r[budget] for r in results if budget in r), key=lambda r: r.error)
            for r in ranked[:finalists]:
                say(f"scoring {lib} {r.method} [{r.config}; {r.steps} steps] on {score_samples}"
                    f" x {len(seeds)} seed(s)")
                rows.append({"budget": budget, "library": lib, "method": r.method,
                             "config": r.config, "options": dict(r.options), "steps": r.steps,
                             "nfe": r.nfe, "distance": r.error,
                             **score_configuration(case, judge, lib, r.method, r.options,
                                                   r.steps, score_samples, seeds)})
                if on_row is not None:
                    on_row({**assemble(), "partial": True})
    return assemble()


def parse_config(config: str) -> dict:
    """The options of a saved row's ``config`` text ("spacing=leading, lower_order_final=True,
    disable_corrector=[0]"; "defaults" for none), as the search passed them."""
    import yaml

    if config.strip() in ("", "defaults"):
        return {}
    out = {}
    for item in re.split(r", (?=\w+=)", config.strip()):
        key, value = item.split("=", 1)
        parsed = yaml.safe_load(value)
        out[key] = value if parsed is None else parsed  # e.g. "log_snr(full tail)" stays text
    return out


#: the project's default sampler (conf/sampler/dpmpp.yaml: DPM-Solver++(2M), log-SNR grid that
#: skips the cosine tail), and the same solver on the grid that spends levels in the tail
REFERENCES = (("dpmpp_2m", {"spacing": "log_snr"}, "default sampler"),
              ("dpmpp_2m", {"spacing": "log_snr(full tail)"}, "default sampler, tail not skipped"))


def rescore(case: CheckpointCase, judge, table: dict, seeds: Sequence[int], *,
            score_samples: int | None = None, references: bool = True, progress=None,
            on_row=None) -> dict:
    """A saved comparison's finalists re-scored at every seed of ``seeds`` (no new search), with
    each grid fitted for the case (``case.fitted``: ``spacing=optimized`` rows, at each budget the
    largest fitted step count it pays for; eligible as winners) and the :data:`REFERENCES` rows
    (``library`` "diffusion-lab", ``reference`` naming them; not eligible as winners) at each
    budget's largest step count; winners by mean FID. A row its library refuses to run (one of
    :data:`~diffusion_lab.bench.search.REFUSED`, e.g. diffusers' ``IndexError`` on a grid with
    repeated timesteps) is listed under ``refused`` with the error, and the others are scored.
    ``on_row(table)``, if given, receives the table so far (``"partial": True``) after each row
    (a kill then loses only the row being scored)."""
    say = progress or (lambda _msg: None)
    count = score_samples or table["score_samples"]
    seeds = list(seeds)
    rows, refused, refs = [], [], []

    def assemble() -> dict:
        return {**{k: v for k, v in table.items() if k not in ("rows", "winners", "partial")},
                "score_samples": count, "score_seeds": seeds, "rows": rows, "references": refs,
                "fitted": {method: sorted(grids) for method, grids in case.fitted.items()},
                "refused": refused, "winners": winners_of(rows, table["budgets"])}

    def done_row() -> None:
        if on_row is not None:
            on_row({**assemble(), "partial": True})
    for old in table["rows"]:
        options = old["options"] if "options" in old else parse_config(old["config"])
        say(f"scoring {old['library']} {old['method']} [{old['config']}; {old['steps']} steps]"
            f" on {count} x {len(seeds)} seed(s)")
        kept = {k: old[k] for k in ("budget", "library", "method", "config", "steps", "nfe",
                                    "distance")}
        try:
            scores = score_configuration(case, judge, old["library"], old["method"], options,
                                         old["steps"], count, seeds)
        except REFUSED as e:  # the library cannot run it (as the search skips such a row)
            say(f"  refused: {type(e).__name__}: {e}")
            refused.append({**kept, "options": options, "error": f"{type(e).__name__}: {e}"})
            done_row()
            continue
        rows.append({**kept, "options": options, **scores})
        done_row()
    options = {"spacing": "optimized"}
    for method, grids in case.fitted.items():
        nfe = {n: solver_nfe(our_rows()[method][0], n) for n in grids}
        for budget in table["budgets"]:
            within = [n for n in grids if nfe[n] <= budget]
            if not within:
                continue
            steps = max(within)  # the largest fitted step count the budget pays for
            say(f"scoring {method} on its fitted grid ({steps} steps) for NFE {budget}")
            rows.append({"budget": budget, "library": "diffusion-lab", "method": method,
                         "config": describe(options), "options": options, "steps": steps,
                         "nfe": nfe[steps], "distance": None, "fitted": True,
                         **score_configuration(case, judge, "diffusion-lab", method, options,
                                               steps, count, seeds)})
            done_row()
    if references:
        for budget in table["budgets"]:
            for method, options, label in REFERENCES:
                say(f"scoring {label} ({method}, {options['spacing']}; {budget} steps)")
                refs.append({"budget": budget, "library": "diffusion-lab", "reference": label,
                             "method": method, "config": describe(options),
                             "options": options, "steps": budget, "nfe": budget,
                             **score_configuration(case, judge, "diffusion-lab", method, options,
                                                   budget, count, seeds)})
                done_row()
    return assemble()


def _score_text(row: dict) -> str:
    spread = f" +- {row['fid_std']:.2g}" if len(row.get("seeds", [])) > 1 else ""
    return f"{row['fid']:.4g}{spread} / {row['accuracy']:.3f}"


def format_checkpoint_winners(table: dict) -> str:
    seeds = table.get("score_seeds", [table["seed"]])
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean +- std over seeds {seeds}"
    head = ("NFE  best diffusion-lab: FID / accuracy  |  best diffusers: FID / accuracy  | FID ratio"
            f"   ({table['score_samples']} samples, {which})")
    lines = [head]
    for w in table["winners"]:
        sides = []
        for lib in ("diffusion-lab", "diffusers"):
            row = w.get(lib)
            sides.append("(no row)" if row is None else
                         f"{row['method']} [{row['config']}; {row['steps']} steps] "
                         f"{_score_text(row)}")
        ratio = "-" if w["fid_ratio"] is None else f"{w['fid_ratio']:.3f}"
        lines.append(f"{w['budget']:3d}  {sides[0]}  |  {sides[1]}  | {ratio}")
    for ref in table.get("references", []):
        lines.append(f"{ref['budget']:3d}  {ref['reference']} [{ref['config']}; {ref['steps']} "
                     f"steps] {_score_text(ref)}")
    for row in table.get("refused", []):
        lines.append(f"{row['budget']:3d}  refused by {row['library']}: {row['method']} "
                     f"[{row['config']}; {row['steps']} steps]: {row['error']}")
    return "\n".join(lines)
