"""Fit sigma grids to a checkpoint: python scripts/optimize_grid.py CKPT [--steps 5 10 20]

For each step count, the interior noise levels are placed so that the solver's few-step samples
land where a fine solve (--fine steps) of the same model lands from the same noise
(diffusion_lab.optimized_grid.fit_grid), for --samples class-balanced samples; with --fit-ends
the first and last levels are fitted too (by default sigma_max and sigma_min stay).
--objective fid fits for the data instead of the model's own ODE solution: the grid minimises
the FID (the project judge's classifier features) of the --samples few-step samples against the
training data, from the fit's own noise draws (--seed), never the evaluation's. Each fitted
grid is then checked on another draw (--holdout-seed): where it does not beat the grid its
search started from there, that start is kept instead (the fit followed its own draw). The grids
are saved beside the checkpoint (<ckpt stem>.grids.json, or --out) and used by
    python scripts/sample.py ckpt=CKPT sampler/spacing=optimized sampler.steps=N
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion_lab.discretization import (
    KarrasSpacing,
    LeadingSpacing,
    LogSNRSpacing,
    QuadraticSpacing,
    UniformSpacing,
)
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.optimized_grid import (
    checked_on_held_out,
    fit_grid,
    grid_file,
    grid_loss,
    save_grids,
    solver_signature,
)
from diffusion_lab.samplers import dpmpp_2m, dpmpp_2s, dpmpp_3m, euler, heun, unipc
from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.errors import exit_on_user_error
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.utils.progress import progress_bar

#: the grids --fit-ends may start from (the closest to the fine solve is taken)
START_SPACINGS = (LogSNRSpacing(), KarrasSpacing(), UniformSpacing(), LeadingSpacing(),
                  QuadraticSpacing())


def start_grids(schedule, n: int) -> list:
    """The grids a --fit-ends fit may start from: each of START_SPACINGS' n-step grids, and its
    (n+1)-step grid without the last positive level, whose last step to 0 then starts above
    sigma_min (where an evaluation barely changes x; diffusers' final_sigmas_type="sigma_min"
    grids are of this kind). The fit keeps the closest of them to its start."""
    grids = []
    for spacing in START_SPACINGS:
        grids.append(spacing(schedule, n))
        longer = spacing(schedule, n + 1)
        grids.append(torch.cat([longer[:-2], longer[-1:]]))
    return grids


SOLVERS = {"dpmpp_2m": dpmpp_2m, "dpmpp_3m": dpmpp_3m, "unipc": unipc, "euler": euler,
           "heun": heun, "unipc_3": functools.partial(unipc, order=3), "dpmpp_2s": dpmpp_2s}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", type=Path)
    p.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--solver", choices=sorted(SOLVERS), default="dpmpp_2m",
                   help="the solver the grids are fitted for (default: the default sampler's)")
    p.add_argument("--objective", choices=["distance", "fid"], default="distance",
                   help="distance: mean squared distance to the fine solve of the same noise; "
                        "fid: FID of the samples against the training data (judge features)")
    p.add_argument("--samples", type=int, default=None,
                   help="fit samples (default: 64 for distance, 1000 for fid)")
    p.add_argument("--fine", type=int, default=200,
                   help="steps of the reference solve (--objective distance)")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"),
                   help="the judge's classifier and reference statistics (--objective fid)")
    p.add_argument("--guidance-scale", type=float, default=1.0)
    p.add_argument("--method", choices=["simplex", "coordinate"], default="simplex",
                   help="simplex: Nelder-Mead then Powell; coordinate: one level at a time")
    p.add_argument("--max-evals", type=int, default=300,
                   help="at most this many few-step solves per step count")
    p.add_argument("--sweeps", type=int, default=3, help="passes of --method coordinate")
    p.add_argument("--seed", type=int, default=1234, help="noise of the fit (not of evaluation)")
    p.add_argument("--holdout-seed", type=int, default=None,
                   help="noise of the held-out check of each fitted grid (default: --seed + 1)")
    p.add_argument("--no-holdout", action="store_true",
                   help="keep each fitted grid without checking it on held-out noise")
    p.add_argument("--fit-ends", action="store_true",
                   help="fit the first and last noise levels too (within the schedule's range), "
                        "starting from whichever of the log-SNR, Karras, uniform, leading and "
                        "quadratic grids (n steps, or n+1 without the last level) is closest; "
                        "default: sigma_max and sigma_min fixed, "
                        "from the log-SNR grid")
    p.add_argument("--out", type=Path, default=None,
                   help="grids file to write (default: beside the checkpoint, <stem>.grids.json, "
                        "which sample.py's sampler/spacing=optimized reads; elsewhere: pass "
                        "sampler.spacing.path=FILE, or sampler_report.py --grids FILE)")
    args = p.parse_args(argv)
    if args.samples is None:
        args.samples = 1000 if args.objective == "fid" else 64
    if args.fit_ends and args.method != "simplex":
        p.error("--fit-ends needs --method simplex")
    if args.out is not None and not args.out.parent.is_dir():  # refused before minutes of fitting
        p.error(f"--out {args.out}: no folder {args.out.parent}")
    if (any(n < 2 for n in args.steps) or args.samples < 1 or args.fine < max(args.steps)
            or args.max_evals < 1):
        p.error("need --steps >= 2, --samples >= 1, --max-evals >= 1 and --fine >= every --steps")
    if args.holdout_seed is not None and args.holdout_seed == args.seed:
        p.error("--holdout-seed must differ from --seed (the check needs noise the fit never saw)")
    if args.objective == "fid" and args.samples < 2:
        p.error("--objective fid needs --samples >= 2 (a covariance of the samples' features)")
    with exit_on_user_error():
        ckpt = load_checkpoint_file(args.ckpt)
        module = module_from_checkpoint(ckpt, path=args.ckpt)
    judge = _judge(ckpt, module, args.cache_dir) if args.objective == "fid" else None
    torch.manual_seed(0)
    solver = SOLVERS[args.solver]
    denoiser = module.denoiser(use_ema=True, guidance_scale=args.guidance_scale)
    cond = None
    if module.num_classes > 0:
        cond = torch.arange(args.samples) % module.num_classes

    def noise(seed: int) -> torch.Tensor:
        return PerSampleNoise(seed, range(args.samples)).sample(
            (args.samples, *module.sample_shape), "cpu", torch.float32)

    z = noise(args.seed)
    holdout_seed = args.seed + 1 if args.holdout_seed is None else args.holdout_seed
    z_held = None if args.no_holdout else noise(holdout_seed)
    schedule = module.schedule
    grids, losses, held = {}, {}, {}
    # a latent model's samples are judged as the images they decode to
    objective = None if judge is None else (lambda x: judge.fid(module.decode(x)))
    # one bar over every trial solve: the start grids' and the search's (at most --max-evals)
    per_fit = (args.max_evals + 1 + (2 * len(START_SPACINGS) if args.fit_ends else 0)
               + (0 if z_held is None else 2))
    with torch.no_grad(), progress_bar("fitting grids (trial solves)",
                                       per_fit * len(args.steps)) as advance:
        fine = LogSNRSpacing()(schedule, args.fine)

        def fine_solve(noise_draw):  # the reference of --objective distance
            return solver(denoiser, noise_draw * (1 + float(fine[0]) ** 2) ** 0.5, fine, cond=cond)

        advanced = [0]

        def trial(_value: float = 0.0, count: int = 1) -> None:
            advanced[0] += count
            advance(count)

        def loss_on(noise_draw):
            """The fit's loss for one grid on ``noise_draw``, counted as a trial solve."""
            reference = None if objective is not None else fine_solve(noise_draw)

            def loss(grid) -> float:
                value = grid_loss(solver, denoiser, noise_draw, grid, reference, cond, objective)
                trial(value)
                return value

            return loss, reference

        loss, reference = loss_on(z)
        held_out_loss = None if z_held is None else loss_on(z_held)[0]

        for i, n in enumerate(args.steps):
            start = LogSNRSpacing()(schedule, n)
            ends = None
            if args.fit_ends:
                ends = (float(schedule.sigma_min), float(schedule.sigma_max))
                start = min(start_grids(schedule, n), key=loss)
            grid, before, after = fit_grid(denoiser, solver, start, z, cond=cond,
                                           reference=reference, method=args.method,
                                           max_evals=args.max_evals, sweeps=args.sweeps,
                                           fit_ends=ends, objective=objective, on_trial=trial)
            if held_out_loss is not None:
                grid, (start_loss, fitted_loss) = checked_on_held_out(start, grid, held_out_loss)
                held[str(n)] = {"seed": holdout_seed, "start": start_loss, "fitted": fitted_loss,
                                "kept": "start" if grid is start else "fitted"}
            grids[n], losses[str(n)] = grid, [before, after]
            trial(count=max(0, per_fit * (i + 1) - advanced[0]))  # a search that stopped early
    out = args.out or grid_file(args.ckpt)
    replaced = save_grids(out, grids, {
        "solver": args.solver, "solver_signature": solver_signature(solver),
        "guidance_scale": args.guidance_scale, "method": args.method,
        "max_evals": args.max_evals, "samples": args.samples, "seed": args.seed,
        "fit_ends": args.fit_ends, "objective": args.objective,
        **({"fine_steps": args.fine} if judge is None else {"fid_reference": judge.key}),
        "fit_loss": losses, **({"holdout": held} if held else {})})
    started_from = "the closest schedule grid" if args.fit_ends else "log-SNR grid"
    measure = (f"mean squared distance to the {args.fine}-step solve" if judge is None
               else f"FID of {args.samples} samples (seed {args.seed}) to the training data")
    for n in args.steps:
        before, after = losses[str(n)]
        print(f"{n:3d} steps: {measure} {before:.3g} ({started_from}) -> {after:.3g} (fitted)")
        if str(n) in held:
            check = held[str(n)]
            verdict = ("kept the start grid: the fit does not carry over to other noise"
                       if check["kept"] == "start" else "kept the fitted grid")
            print(f"           held-out noise (seed {holdout_seed}): {check['start']:.3g} (start) "
                  f"-> {check['fitted']:.3g} (fitted); {verdict}")
    if replaced:
        print(f"{out} held grids of another solver, guidance scale or objective: replaced")
    print(f"wrote {out}")
    return {"file": str(out), "fit_loss": losses}


def _judge(ckpt: dict, module, cache_dir: Path):
    """The project's judge of the checkpoint's data (classifier features, training-split
    statistics); exit 2 with one line where the data has no classifier."""
    from diffusion_lab.evaluation import SampleJudge
    from diffusion_lab.evaluation.judge import why_not_judgeable
    from diffusion_lab.tasks.build import stored_config
    from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint

    datamodule = datamodule_from_checkpoint(ckpt)
    reason = why_not_judgeable(getattr(datamodule, "pixel_data", datamodule), module)
    if reason:
        print(f"error: --objective fid: cannot judge samples: {reason}", file=sys.stderr)
        raise SystemExit(2)
    return SampleJudge.for_data(datamodule, cache_dir, stored_config(ckpt).data.name)


if __name__ == "__main__":
    main()
