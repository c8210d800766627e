"""Sampler error against NFE: exact on Gaussian data, or on a trained checkpoint against diffusers.

Without --ckpt: the W2-vs-NFE table of every sampler x spacing x schedule on Gaussian data. Data
N(mu, diag(s^2)) has the closed-form denoiser D*, so each sampler's output law is an exact
Gaussian (diffusion_lab.oracle.affine_output_law) and W2 to the data law is pure solver error.

    python scripts/sampler_report.py [--dim 16] [--steps 5 10 20 50] [--json report.json]

With --ckpt: case 3 of the sampler comparison (diffusion_lab.bench.checkpoint_case). Both libraries
drive the checkpoint's EMA denoiser (diffusers through an eps adapter); every configuration of
each is searched per NFE budget by its distance to a fine solve of the same model, and each
library's --finalists best are scored by the judge (FID, accuracy) on --score-samples samples
from fixed per-sample seeds. Grids fitted by scripts/optimize_grid.py beside the checkpoint
(or the files --grids names, one solver each) enter the search as spacing=optimized.

    python scripts/sampler_report.py --ckpt outputs/default/<run>/checkpoints/last.ckpt

--score-seeds 0 1 2 scores every finalist once per seed and ranks by mean FID (printed with its
spread over seeds). --rescore TABLE.json skips the search: it re-scores the finalists of a saved
table (e.g. docs/samplers/checkpoint_case_digits.json) at --score-seeds, beside the default
sampler with and without the cosine-tail skip, and with each fitted grid scored at the budgets
that pay for it.

--merge A.json B.json joins tables that scored the same rows at different seeds (e.g. a
--rescore at --score-seeds 2 3 4 of a table scored at 0 1) into one over all their seeds, and
prints each budget's best of both libraries compared seed by seed (the seeds share x_T):

    python scripts/sampler_report.py --merge docs/samplers/checkpoint_case_mnist5k.json \
        docs/samplers/checkpoint_case_mnist5k_seeds234.json --json merged.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from diffusion_lab.discretization import (
    KarrasSpacing,
    LeadingSpacing,
    LogSNRSpacing,
    QuadraticSpacing,
    UniformSpacing,
)
from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.samplers import SOLVERS, solver_nfe
from diffusion_lab.schedules import cosine_schedule, linear_schedule

SPACINGS = {
    "uniform": UniformSpacing(),
    "leading": LeadingSpacing(),
    "quadratic": QuadraticSpacing(),
    "logsnr": LogSNRSpacing(),
    "karras": KarrasSpacing(),
    "logsnr_fulltail": LogSNRSpacing(skip_tail=False),
    "karras_fulltail": KarrasSpacing(skip_tail=False),
}
SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def build_report(
    dim: int, steps: list[int], seed: int, std_min: float, std_max: float
) -> list[dict]:
    oracle = GaussianOracle.random(dim=dim, seed=seed, std_min=std_min, std_max=std_max)
    rows = []
    for sched_name, make in SCHEDULES.items():
        schedule = make()
        for spacing_name, spacing in SPACINGS.items():
            for solver_name, solver in SOLVERS.items():
                cells = []
                for n in steps:
                    mean, std = affine_output_law(solver, oracle, spacing(schedule, n), dim)
                    cells.append(
                        {"steps": n, "nfe": solver_nfe(solver, n), "w2": oracle.w2(mean, std)}
                    )
                rows.append(
                    {
                        "schedule": sched_name,
                        "spacing": spacing_name,
                        "solver": solver_name,
                        "cells": cells,
                    }
                )
    return rows


def format_table(rows: list[dict], steps: list[int]) -> str:
    head = f"{'schedule':8s} {'spacing':15s} {'solver':12s} " + " ".join(
        f"{'n=' + str(n):>16s}" for n in steps
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = " ".join(f"{c['w2']:9.4f} ({c['nfe']:3d})" for c in row["cells"])
        lines.append(f"{row['schedule']:8s} {row['spacing']:15s} {row['solver']:12s} {cells}")
    lines.append("cells: W2 to the data law (NFE)")
    return "\n".join(lines)


#: scripts/optimize_grid.py's --solver names -> the sampler table's method names
FITTED_NAMES = {"dpmpp_2m": "dpmpp_2m", "dpmpp_3m": "dpmpp_3m", "unipc": "unipc (bh2) 2",
                "unipc_3": "unipc (bh2) 3", "euler": "euler (= DDIM)", "heun": "heun",
                "dpmpp_2s": "dpmpp_2s"}


def checkpoint_report(args) -> dict:
    """Case 3 on ``args.ckpt``; prints the winners and returns the table."""
    from diffusion_lab.bench.checkpoint_case import (
        CheckpointCase,
        checkpoint_comparison,
        format_checkpoint_winners,
        rescore,
    )
    from diffusion_lab.evaluation import SampleJudge
    from diffusion_lab.optimized_grid import grid_file
    from diffusion_lab.tasks.build import module_from_checkpoint, stored_config
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint
    from diffusion_lab.tasks.io import atomic_write_json, load_checkpoint_file

    with exit_on_user_error():
        ckpt = load_checkpoint_file(args.ckpt)
        module = module_from_checkpoint(ckpt, path=args.ckpt)
    infos = args.grid_infos
    if not args.grids and grid_file(args.ckpt).is_file():  # the file beside the checkpoint
        infos = [json.loads(grid_file(args.ckpt).read_text())]
    fitted = {FITTED_NAMES[info["solver"]]: {
        int(n): torch.tensor(g, dtype=torch.float64) for n, g in info["grids"].items()}
        for info in infos if info.get("solver") in FITTED_NAMES}
    fits = {FITTED_NAMES[info["solver"]]: {  # how each fitted grid was fitted, for the table
        k: info[k] for k in ("objective", "fit_ends", "samples", "seed", "max_evals", "fit_loss",
                             "holdout")
        if k in info} for info in infos if info.get("solver") in FITTED_NAMES}
    torch.manual_seed(0)
    case = CheckpointCase(module.denoiser(use_ema=True, guidance_scale=args.guidance_scale),
                          module.schedule, module.sample_shape, module.num_classes,
                          fitted=fitted, search_samples=args.search_samples,
                          fine_steps=args.fine, seed=args.seed,
                          score_batch=args.score_batch)
    judge = SampleJudge.for_data(datamodule_from_checkpoint(ckpt), args.cache_dir,
                                 stored_config(ckpt).data.name)
    def say(message: str) -> None:
        print(message, flush=True)

    def save_so_far(partial: dict) -> None:  # a kill keeps every row scored before it
        if args.json is not None:
            atomic_write_json({**partial, "checkpoint": str(args.ckpt)}, args.json)

    if args.rescore is not None:
        saved = {**args.saved, "rows": []} if args.fitted_only else args.saved
        table = rescore(case, judge, saved, args.score_seeds or [args.seed],
                        score_samples=args.score_samples, references=not args.no_references,
                        progress=say, on_row=save_so_far)
        table.update(checkpoint=str(args.ckpt), rescored_from=str(args.rescore),
                     fitted_only=args.fitted_only, fits=fits)
        print(format_checkpoint_winners(table))
        return table
    table = checkpoint_comparison(case, judge, args.budgets, ours=args.ours, theirs=args.theirs,
                                  finalists=args.finalists, score_samples=args.score_samples,
                                  progress=say, score_seeds=args.score_seeds,
                                  on_row=save_so_far)
    table.update(checkpoint=str(args.ckpt), guidance_scale=args.guidance_scale,
                 fine_steps=args.fine, fitted={k: sorted(v) for k, v in fitted.items()},
                 fits=fits)
    print(format_checkpoint_winners(table))
    return table


def merge_report(parser, paths: list[Path], out: Path | None) -> None:
    """--merge: the tables at ``paths`` joined over their seeds, printed and saved to ``out``."""
    from diffusion_lab.bench.checkpoint_case import format_checkpoint_winners
    from diffusion_lab.bench.seed_merge import format_paired, merge_seeds, paired_differences

    tables = []
    for path in paths:
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            parser.error(f"--merge {path}: cannot read it ({e})")
        if not isinstance(table, dict) or not {"rows", "budgets", "score_samples"} <= table.keys():
            parser.error(f"--merge {path}: not a table of sampler_report.py --ckpt")
        if table.get("partial"):
            parser.error(f"--merge {path}: a partial table (its run did not finish)")
        tables.append(table)
    try:
        merged = merge_seeds(tables)
    except ValueError as e:
        parser.error(f"--merge: {e}")
    merged["merged_from"] = [str(p) for p in paths]
    merged["paired"] = paired_differences(merged)
    print(format_checkpoint_winners(merged))
    print(format_paired(merged["paired"]))
    for row in merged["dropped"]:
        print(f"not in every table, left out: {row}")
    if out is not None:
        from diffusion_lab.tasks.io import atomic_write_json

        atomic_write_json(merged, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--std-min", type=float, default=0.05)
    parser.add_argument("--std-max", type=float, default=1.0)
    parser.add_argument(
        "--json", type=Path, default=None,
        help="also write the report as JSON here (with --ckpt: rewritten after every scored row, "
             "marked \"partial\": true until the run ends, so a kill keeps the rows scored)")
    case3 = parser.add_argument_group("trained checkpoint (--ckpt)")
    case3.add_argument("--ckpt", type=Path, default=None)
    case3.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20])
    case3.add_argument("--score-samples", type=int, default=None,
                       help="samples per score (default 1000; with --rescore, the table's)")
    case3.add_argument("--score-batch", type=int, default=500,
                       help="samples per network call when scoring (speed and memory only)")
    case3.add_argument("--search-samples", type=int, default=64)
    case3.add_argument("--fine", type=int, default=500, help="steps of the reference solve")
    case3.add_argument("--finalists", type=int, default=3)
    case3.add_argument("--guidance-scale", type=float, default=1.0)
    case3.add_argument("--ours", nargs="+", default=None, help="our methods to search (all)")
    case3.add_argument("--theirs", nargs="+", default=None, help="diffusers rows to search (all)")
    case3.add_argument("--score-seeds", type=int, nargs="+", default=None,
                       help="score each finalist at each of these seeds (default: --seed)")
    case3.add_argument("--rescore", type=Path, default=None,
                       help="a saved --json table: re-score its finalists, no search")
    case3.add_argument("--fitted-only", action="store_true",
                       help="with --rescore: score the fitted grids and the default sampler only, "
                            "not the saved finalists")
    case3.add_argument("--no-references", action="store_true",
                       help="with --rescore: do not score the default sampler (with and without "
                            "the cosine-tail skip) beside the table's rows")
    case3.add_argument("--grids", type=Path, nargs="+", default=None,
                       help="grids files of scripts/optimize_grid.py (one solver each; default: "
                            "the one beside the checkpoint, if any)")
    case3.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    case3.add_argument("--merge", type=Path, nargs="+", default=None,
                       help="tables of --ckpt scored at different seeds: join them (no scoring)")
    args = parser.parse_args(argv)
    if args.merge is not None:
        if args.ckpt is not None or args.rescore is not None:
            parser.error("--merge joins saved tables; it takes no --ckpt or --rescore")
        merge_report(parser, args.merge, args.json)
        return
    if args.rescore is not None and args.ckpt is None:
        parser.error("--rescore needs --ckpt (the checkpoint the table was made on)")
    if args.fitted_only and args.rescore is None:
        parser.error("--fitted-only needs --rescore (the table giving budgets and sample count)")
    if args.no_references and args.rescore is None:
        parser.error("--no-references needs --rescore (only a re-score adds the references)")
    if args.ckpt is not None:
        if args.rescore is None and args.score_samples is None:
            args.score_samples = 1000
        if (min(args.budgets) < 1 or args.search_samples < 1
                or (args.score_samples is not None and args.score_samples < 2)
                or args.score_batch < 1):
            parser.error("need --budgets >= 1, --score-samples >= 2, --search-samples >= 1 "
                         "and --score-batch >= 1")
        if args.score_seeds is not None and len(set(args.score_seeds)) != len(args.score_seeds):
            parser.error("--score-seeds must not repeat a seed")
        args.grid_infos = []  # each --grids file, read once
        for grids in args.grids or []:
            try:
                info = json.loads(grids.read_text())
            except (OSError, ValueError) as e:
                parser.error(f"--grids {grids}: cannot read it ({e})")
            if not isinstance(info, dict) or info.get("solver") not in FITTED_NAMES:
                parser.error(f"--grids {grids}: not a grids file of scripts/optimize_grid.py")
            args.grid_infos.append(info)
        if len({info["solver"] for info in args.grid_infos}) < len(args.grid_infos):
            parser.error("--grids: two files fitted for the same solver")
        if args.rescore is not None:
            try:
                args.saved = json.loads(args.rescore.read_text())
            except (OSError, ValueError) as e:
                parser.error(f"--rescore {args.rescore}: cannot read it ({e})")
            if not isinstance(args.saved, dict) or not {
                    "rows", "budgets", "score_samples"} <= args.saved.keys():
                parser.error(f"--rescore {args.rescore}: not a table of sampler_report.py --ckpt")
        table = checkpoint_report(args)
        if args.json is not None:
            from diffusion_lab.tasks.io import atomic_write_json

            atomic_write_json(table, args.json)  # the whole table (no "partial" key)
        return
    rows = build_report(args.dim, args.steps, args.seed, args.std_min, args.std_max)
    print(
        f"Gaussian data: dim={args.dim}, std in [{args.std_min}, {args.std_max}] "
        "(log-spaced), T=1000"
    )
    print(format_table(rows, args.steps))
    if args.json is not None:
        meta = {k: getattr(args, k) for k in ("dim", "steps", "seed", "std_min", "std_max")}
        args.json.write_text(json.dumps({"config": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
