"""Few-step student vs teacher (and flow vs eps) table: accuracy, FID, images/s.

  python scripts/few_step_report.py --teacher T.ckpt --student S.ckpt [--ddpm-steps 1000]
  python scripts/few_step_report.py --nfe-model flow=F.ckpt --nfe-model eps=E.ckpt --nfe 5 10 20
Samples: --samples-per-class per class (default 100), noise from --seed (default 12345).

--tune-levels first searches the student's intermediate level sigma_hi (where the 2-step sampler
re-noises; diffusion_lab.distill.level_search) by FID on the noise of --tune-seed (default
--seed + 1, never --seed), then reports every student row at the level found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.distill.few_step_report import (
    measure_rows,
    nfe_rows,
    student_rows,
    student_spacing,
)
from diffusion_lab.distill.level_search import (
    DEFAULT_CANDIDATES,
    best_level,
    candidate_spacings,
    score_levels,
)
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import dpmpp_2m
from diffusion_lab.samplers.consistency_sampling import consistency
from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.errors import ConfigError, exit_on_user_error
from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint
from diffusion_lab.tasks.io import load_checkpoint_file


def _loader():
    cache = {}

    def load(path):
        if path not in cache:
            ckpt = load_checkpoint_file(path)
            cache[path] = (module_from_checkpoint(ckpt, path=path), datamodule_from_checkpoint(ckpt),
                           ckpt["diffusion_lab_config"]["data"]["name"])
        return cache[path]

    return load


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher"), p.add_argument("--student")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--ddpm-steps", type=int, default=None)
    p.add_argument("--ddpm-samples-per-class", type=int, default=None,
                   help="fewer samples for the DDPM row (ddpm-steps NFE each); the teacher's "
                        "20-NFE row is repeated at that count")
    p.add_argument("--nfe-model", action="append", default=[], metavar="NAME=CKPT")
    p.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--guidance-scale", type=float, default=1.0, help="for --nfe-model rows")
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--tune-levels", action="store_true",
                   help="search the student's 2-step intermediate level by FID first")
    p.add_argument("--tune-seed", type=int, default=None, help="noise of the search (--seed + 1)")
    p.add_argument("--tune-candidates", type=float, nargs="+", default=list(DEFAULT_CANDIDATES),
                   metavar="SIGMA")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cache_dir = os.environ.get("DIFFUSION_LAB_CACHE", ".cache")
    load = _loader()
    with exit_on_user_error():
        if (args.samples_per_class < 1 or min(args.steps) < 1 or min(args.nfe) < 1
                or (args.ddpm_samples_per_class is not None and args.ddpm_samples_per_class < 1)):
            raise ConfigError("--samples-per-class, --ddpm-samples-per-class, --steps and --nfe "
                              "must be >= 1")
        if bool(args.teacher) != bool(args.student) or not (args.teacher or args.nfe_model):
            raise ConfigError("give --teacher and --student, and/or --nfe-model NAME=CKPT")
        tune_seed = args.seed + 1 if args.tune_seed is None else args.tune_seed
        if args.tune_levels and not args.student:
            raise ConfigError("--tune-levels searches a student's levels: give --student")
        if args.tune_levels and tune_seed == args.seed:
            raise ConfigError("--tune-seed must differ from --seed: levels chosen on the reported "
                              "draw would flatter the student")
        rows, search = [], []
        if args.student:
            student = load(args.student)[0]
            spacing = student_spacing(student)
            if args.tune_levels:
                try:
                    trials = candidate_spacings(spacing, args.tune_candidates)
                    for trial in trials:  # the spacing's own range checks, before any sampling
                        trial(student.schedule, 2)
                except ValueError as e:
                    raise ConfigError(f"--tune-candidates: {e}") from None

                def score(trial):
                    row = ("search 2-step", args.student, SamplerSpec(consistency, trial, 2),
                           student.teacher_guidance_scale)
                    result = measure_rows([row], load, samples_per_class=args.samples_per_class,
                                          seed=tune_seed, cache_dir=cache_dir)[0]
                    print(f"  sigma_hi={trial.sigma_hi:g}: accuracy {result['accuracy']:.3f}, "
                          f"FID {result['fid']:.3f}", flush=True)
                    return result

                search = score_levels(score, trials)
                best = best_level(search)
                spacing = next(trial for trial in trials if trial.sigma_hi == best)
                print(f"intermediate level: sigma_hi={best:g} (lowest FID of {len(search)} "
                      f"candidates, 2 steps, seed {tune_seed}); sample with "
                      f"sampler.spacing.sigma_hi={best:g}", flush=True)
            rows += student_rows(args.teacher, args.student, student,
                                 steps=args.steps, ddpm_steps=args.ddpm_steps,
                                 ddpm_samples_per_class=args.ddpm_samples_per_class, spacing=spacing)
        for item in args.nfe_model:
            name, _, ckpt = item.partition("=")
            if not ckpt:
                raise ConfigError(f"--nfe-model wants NAME=CKPT, got {item!r}")
            rows += nfe_rows(name, ckpt, lambda n: SamplerSpec(dpmpp_2m, LogSNRSpacing(), n),
                             args.nfe, args.guidance_scale)
        print(f"| model | NFE | samples | accuracy | FID | images/s |  (seed {args.seed}, "
              f"{torch.get_num_threads()} threads)")
        print("|---|---|---|---|---|---|", flush=True)

        def table_row(r):
            print(f"| {r['name']} (w={r['guidance_scale']:g}) | {r['nfe']} | {r['samples']} | "
                  f"{r['accuracy']:.3f} | {r['fid']:.2f} | {r['images_per_s']:.1f} |", flush=True)

        results = measure_rows(rows, load, samples_per_class=args.samples_per_class, seed=args.seed,
                               cache_dir=cache_dir, on_row=table_row)
    if args.json:  # the search's rows (at --tune-seed) first, each with its sigma_hi
        args.json.write_text(json.dumps([*search, *results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
