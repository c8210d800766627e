"""Throughput benchmarks: python scripts/benchmark.py [--json out.json] [--readme]

Sections (each a table; --json writes them all with a description of the machine):
  throughput  training images/s for a full optimizer step (forward, loss, backward, AdamW),
              sampling images/s per network evaluation (CFG as one batched forward), achieved
              GFLOP/s, parameters, memory held for backward, (CUDA) peak memory, per preset.
  diffusers   the same training step, same batch, same input and precision, for diffusion-lab's
              U-Net and diffusers' UNet2DModel in the DDPM CIFAR-10 configuration (35.7M
              parameters each), and DiT-S/2 against DiTTransformer2DModel: the matched row
              (both in the default layout) and the best of each (channels_last or not, and
              with --compile torch.compile for --compile-models at the fastest precision).
              Needs the bench extra: pip install -e '.[bench]'.
  options     the DDPM CIFAR-10 U-Net with one option changed at a time: channels_last,
              attention without scaled_dot_product_attention, activation checkpointing, bf16
              autocast (+ channels_last), torch.compile, fused AdamW, CFG as two forwards.
  profile     (--profile) op-by-op self time of a training step, ours beside diffusers'.
  scaling     (--scaling) training img/s and memory against batch and resolution, sampling
              time against NFE and sample count, FID time against sample count.
  time to quality (--time-to-quality) FID and accuracy against training seconds, the default
              digits run against a diffusers training loop of the same size.
  samplers    (--samplers) every diffusion-lab solver x spacing against every diffusers
              scheduler x option, best configuration per NFE budget (--budgets), on Gaussian data
              (exact W2) and a 2-D Gaussian mixture (sliced W2), linear and cosine schedules.
Median of --repeats timed runs after --warmup untimed ones. --readme rewrites the Benchmarks
section of README.md (between its markers) from the results (or from --from-json FILE[,FILE]).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion_lab.bench.comparison import DIFFUSERS_PAIRS, options, throughput, versus_diffusers
from diffusion_lab.bench.readme import machine_description, write_readme_section
from diffusion_lab.bench.timing import native_bf16
from diffusion_lab.bench.training_step import MODELS

ROOT = Path(__file__).resolve().parents[1]


def sampler_comparison(args) -> dict:
    import warnings

    import diffusers

    from diffusion_lab.bench.sampler_table import comparison

    diffusers.utils.logging.set_verbosity_error()  # its notes on option combinations it adjusts
    warnings.filterwarnings("ignore", category=FutureWarning)
    return comparison(budgets=tuple(args.budgets), cases=tuple(args.sampler_cases),
                      samples=args.sampler_samples, ours=args.sampler_methods,
                      theirs=args.sampler_methods, progress=print)


def print_table(title: str, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print(f"\n## {title}")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols))


def _numbers(kind):
    return lambda text: [kind(v) for v in text.split(",")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["unet_small", "unet_ddpm_cifar10", "dit_s_2"],
                   choices=sorted(MODELS))
    p.add_argument("--diffusers", nargs="*", default=None, choices=sorted(DIFFUSERS_PAIRS),
                   help="side by side with diffusers (default: unet_ddpm_cifar10 dit_s_2 when "
                        "diffusers is installed; pass no names to skip)")
    p.add_argument("--options", action="store_true", help="measure each option on and off")
    p.add_argument("--options-model", default="unet_ddpm_cifar10", choices=sorted(MODELS))
    p.add_argument("--compile", action="store_true",
                   help="include torch.compile in --options and in the best-of-each diffusers rows")
    p.add_argument("--samplers", action="store_true",
                   help="the sampler comparison against every diffusers scheduler and option "
                        "(diffusion_lab.bench.sampler_table; ~40 min on 2 busy CPU cores)")
    p.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20],
                   help="NFE budgets of the sampler comparison")
    p.add_argument("--sampler-cases", nargs="+", default=["gaussian", "mixture"],
                   choices=["gaussian", "mixture"])
    p.add_argument("--sampler-samples", type=int, default=10_000,
                   help="samples per configuration on the mixture case")
    p.add_argument("--sampler-methods", nargs="*", default=None,
                   help="only these methods (both libraries' names; default: all)")
    p.add_argument("--time-to-quality", action="store_true",
                   help="train the default digits model and a diffusers loop of the same size "
                        "for --seconds budgets each; FID and accuracy against seconds")
    p.add_argument("--seconds", type=_numbers(float), default=[60.0, 120.0, 240.0],
                   help="time-to-quality budgets in seconds, comma-separated")
    p.add_argument("--samples-per-class", type=int, default=100,
                   help="time-to-quality samples per class at each budget")
    p.add_argument("--profile", action="store_true",
                   help="op-by-op self time of a training step, ours beside diffusers' "
                        "(--options-model, fp32 and, where native, bf16 + channels_last)")
    p.add_argument("--compile-models", nargs="*", default=["unet_ddpm_cifar10"],
                   help="models whose best-of-each diffusers rows include torch.compile "
                        "(with --compile; at bf16 where native, else fp32)")
    p.add_argument("--scaling", action="store_true",
                   help="training img/s and memory against batch and resolution, sampling time "
                        "against NFE and sample count, FID time against sample count")
    p.add_argument("--resolutions", type=_numbers(int), default=[8, 28, 32, 64])
    p.add_argument("--scaling-batches", type=_numbers(int), default=[4, 16])
    p.add_argument("--scaling-models", type=_numbers(str), default=["unet_small", "dit_s_2"],
                   help="unet_small and/or DiT presets (dit_s_2, dit_tiny, ...)")
    p.add_argument("--nfes", type=_numbers(int), default=[5, 10, 20])
    p.add_argument("--sample-counts", type=_numbers(int), default=[100, 400])
    p.add_argument("--fid-counts", type=_numbers(int), default=[250, 1000, 4000])
    p.add_argument("--cache-dir", default=".cache", help="classifier and FID statistics cache")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: per model)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in the throughput table")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--readme", action="store_true", help="rewrite README.md's Benchmarks section")
    p.add_argument("--from-json", default=None,
                   help="with --readme: results from this file (several, comma-separated, are "
                        "merged section by section: e.g. CPU results and gpu_check.sh's)")
    p.add_argument("--readme-path", default=str(ROOT / "README.md"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def measure(args) -> dict:
    device = torch.device(args.device)
    if args.diffusers is None:
        try:
            import diffusers  # noqa: F401

            args.diffusers = ["unet_ddpm_cifar10", "dit_s_2"]
        except ImportError:
            print("diffusers not installed (pip install -e '.[bench]'): no side-by-side table")
            args.diffusers = []
    result = {
        "machine": machine_description(device),
        "settings": {"warmup": args.warmup, "repeats": args.repeats, "batch": args.batch,
                     "command": "python scripts/benchmark.py " + " ".join(sys.argv[1:])},
        "throughput": throughput(args, device),
        "diffusers": versus_diffusers(args, device) if args.diffusers else [],
        "options": options(args, device) if args.options else [],
    }
    if args.samplers:
        result["samplers"] = sampler_comparison(args)
    if args.profile:
        from diffusion_lab.bench.profile_step import profile_rows

        result["profile"] = profile_rows(args.options_model, False, False, args.batch)
        if native_bf16(device):
            result["profile"] += profile_rows(args.options_model, True, True, args.batch)
    if args.scaling:
        from diffusion_lab.bench import scaling

        result["scaling"] = {"training": scaling.training_scaling(args, device),
                             "sampling": scaling.sampling_scaling(args, args.cache_dir),
                             "fid": scaling.fid_scaling(args, args.cache_dir)}
    if args.time_to_quality:
        from diffusion_lab.bench.time_to_quality import time_to_quality

        result["time_to_quality"] = time_to_quality(
            args.seconds, samples_per_class=args.samples_per_class, cache_dir=args.cache_dir)
    return result


def load_results(paths: str) -> dict:
    """One result, or several merged: later files add their sections (a GPU run's "gpu")."""
    merged: dict = {}
    commands = []
    for path in paths.split(","):
        part = json.loads(Path(path).read_text())
        commands.append((part.get("settings") or {}).get("command"))
        merged.update({k: v for k, v in part.items() if v})
    if merged.get("settings") and len(commands) > 1:
        merged["settings"]["command"] = "`, `".join(c for c in commands if c)
    return merged


def main(argv=None):
    args = parse_args(argv)
    result = load_results(args.from_json) if args.from_json else measure(args)
    print(f"machine: {result['machine']}")
    print_table("throughput", result.get("throughput"))
    print_table("side by side with diffusers (training step)", result.get("diffusers"))
    print_table(f"options ({args.options_model})", result.get("options"))
    print_table("profile: self ms per step by op", result.get("profile"))
    for name, rows in (result.get("scaling") or {}).items():
        print_table(f"scaling: {name}", rows)
    if result.get("time_to_quality"):
        ttq = result["time_to_quality"]
        for side, rows in ttq["rows"].items():
            print_table(f"time to quality: {side}", rows)
        print(f"target FID {ttq['target_fid']}: diffusion-lab {ttq['seconds_ours']} s, "
              f"diffusers {ttq['seconds_diffusers']} s")
    if result.get("samplers"):
        from diffusion_lab.bench.sampler_table import format_winners

        s = result["samplers"]
        print_table("sampler comparison: best configuration of each method per NFE budget",
                    s["rows"])
        print("\n## winners per budget (error: exact W2 on gaussian, sliced W2 on mixture)")
        print(format_winners(s))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.readme:
        write_readme_section(Path(args.readme_path), result)
    return result


if __name__ == "__main__":
    main()
