"""Throughput benchmarks: python scripts/benchmark.py [--json out.json] [--readme]

Sections (each a table; --json writes them all with a description of the machine):
  throughput  training images/s for a full optimizer step (forward, loss, backward, AdamW),
              sampling images/s per network evaluation (CFG as one batched forward), achieved
              GFLOP/s, parameters and (CUDA) peak memory, per backbone preset.
  diffusers   the same training step, same batch, same input and precision, for diffusion-lab's
              U-Net and diffusers' UNet2DModel in the DDPM CIFAR-10 configuration (35.7M
              parameters each), and DiT-S/2 against DiTTransformer2DModel; the ratio of the two.
              Needs the bench extra: pip install -e '.[bench]'.
  options     the DDPM CIFAR-10 U-Net with one option changed at a time: channels_last,
              attention without scaled_dot_product_attention, bf16 autocast, torch.compile,
              fused AdamW, and CFG as two forwards instead of one batched forward.
  samplers    (--samplers) every diffusion-lab solver x spacing against every diffusers
              scheduler x option, best configuration per NFE budget (--budgets), on Gaussian data
              (exact W2) and a 2-D Gaussian mixture (sliced W2), linear and cosine schedules.
Median of --repeats timed runs after --warmup untimed ones. --readme rewrites the Benchmarks
section of README.md (between its markers) from the results (or from --from-json FILE).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion_lab.backbones import UNet
from diffusion_lab.bench.readme import machine_description, write_readme_section
from diffusion_lab.bench.timing import count_flops, median_seconds, native_bf16, significant
from diffusion_lab.guidance import classifier_free
from diffusion_lab.parametrization import EpsPrediction
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.schedules import cosine_schedule
from diffusion_lab.tasks.build import backbone_preset

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    # name: (constructor, input shape (C, H, W), default batch)
    "unet_small": (lambda: UNet(image_size=8, in_channels=1, base_channels=32, channel_mult=(1, 2),
                                attention_resolutions=(4,), num_heads=4, groups=8, num_classes=10),
                   (1, 8, 8), 128),
    "unet_tiny": (lambda: UNet(image_size=8, in_channels=1, base_channels=16, channel_mult=(1, 2),
                               num_res_blocks=1, attention_resolutions=(4,), num_heads=1, groups=8,
                               dropout=0.0, scale_shift_norm=False),
                  (1, 8, 8), 32),
    # the 28x28 preset of experiment=mnist5k
    "unet_mnist": (lambda: backbone_preset("unet_mnist", image_size=28, channels=1, num_classes=10),
                   (1, 28, 28), 64),
    "unet_ddpm_cifar10": (lambda: backbone_preset("unet_ddpm_cifar10", image_size=32, channels=3),
                          (3, 32, 32), 8),
    # the paper's DiT-S/2 on 32x32x4 latents, predicting eps and a variance (8 channels)
    "dit_s_2": (lambda: backbone_preset("dit_s_2", image_size=32, channels=4, num_classes=1000,
                                        out_channels=8), (4, 32, 32), 8),
}
# diffusion-lab preset -> (diffusers builder, how to call it, parameter-matched?)
DIFFUSERS_PAIRS = {
    "unet_ddpm_cifar10": ("unet2d_ddpm_cifar10", "call_unet2d", True),
    "unet_tiny": ("unet2d_tiny", "call_unet2d", True),
    "dit_s_2": ("dit_s_2", "call_dit", False),
}


def _call_ours(net, x, t, y):
    return net(x, t, y) if getattr(net, "num_classes", 0) else net(x, t)


class EpsOnly(torch.nn.Module):
    """The eps channels of a backbone that also predicts a variance (DiT-S/2 as in the paper)."""

    def __init__(self, net, channels: int) -> None:
        super().__init__()
        self.net, self.channels = net, channels

    def forward(self, x, t, cond=None):
        return self.net(x, t, cond)[:, : self.channels]


def train_step(net, call, x, t, y, eps, bf16: bool, fused: bool | None = None):
    """One optimizer step of the eps-prediction loss (MSE in fp32), closed over fixed inputs."""
    kwargs = {"fused": True} if fused else {}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, **kwargs)
    out_ch = x.shape[1]

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = call(net, x, t, y)
        loss = F.mse_loss(out[:, :out_ch].float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def inputs(shape, batch, device, channels_last=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (batch,), generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    eps = torch.randn(batch, *shape, generator=g).to(device)
    return x, t, y, eps


def train_figures(net, call, shape, batch, device, args, bf16=False, channels_last=False,
                  fused=None) -> dict:
    x, t, y, eps = inputs(shape, batch, device, channels_last)
    # FLOPs are counted on the eager module: FlopCounterMode's global module hooks would fire
    # inside a compiled graph (and be traced into it), slowing every later call.
    eager = getattr(net, "_orig_mod", net)
    flops = count_flops(train_step(eager, call, x, t, y, eps, bf16, fused))
    step = train_step(net, call, x, t, y, eps, bf16, fused)
    warmup = max(args.warmup, 2) if eager is not net else args.warmup  # compilation untimed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(step, device, warmup, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"train_img_per_s": significant(batch / seconds), "gflop_per_img": significant(flops / batch / 1e9),
            "gflop_per_s": significant(flops / seconds / 1e9),
            "peak_mem_MiB": None if peak is None else round(peak, 1)}


def sampling_img_per_nfe_s(net, shape, batch, device, args, bf16=False, two_forwards=False) -> float:
    """Guided (w=3) network evaluations: images per second per NFE."""
    x, _, y, _ = inputs(shape, batch, device)
    base = VPDenoiser(EpsOnly(net.eval(), shape[0]), cosine_schedule(), EpsPrediction())
    sigma = torch.full((batch,), 10.0, device=device)
    null = torch.full_like(y, net.num_classes)
    guided = classifier_free(base, 3.0, net.num_classes)

    @torch.no_grad()
    def nfe():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if two_forwards:
                d_c, d_u = base(x, sigma, y), base(x, sigma, null)
                return d_u + 3.0 * (d_c - d_u)
            return guided(x, sigma, y)

    seconds = median_seconds(nfe, device, args.warmup, args.repeats)
    net.train()
    return significant(batch / seconds)


def throughput(args, device) -> list[dict]:
    rows = []
    for name in args.models:
        make, shape, default_batch = MODELS[name]
        batch = args.batch or default_batch
        torch.manual_seed(0)
        net = make().to(device)
        row = {"model": name, "device": device.type, "precision": "bf16-autocast" if args.bf16 else "fp32",
               "batch": batch, "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2)}
        row.update(train_figures(net, _call_ours, shape, batch, device, args, bf16=args.bf16))
        if getattr(net, "num_classes", 0):
            row["sample_img_nfe_per_s"] = sampling_img_per_nfe_s(net, shape, batch, device, args, args.bf16)
        rows.append(row)
    return rows


def versus_diffusers(args, device) -> list[dict]:
    from diffusion_lab.bench import diffusers_models

    rows = []
    for name in args.diffusers:
        builder, caller, matched = DIFFUSERS_PAIRS[name]
        make, shape, default_batch = MODELS[name]
        batch = args.batch or default_batch
        for bf16 in ([False, True] if native_bf16(device) else [False]):
            torch.manual_seed(0)
            ours = make().to(device)
            torch.manual_seed(0)
            theirs = getattr(diffusers_models, builder)().to(device)
            a = train_figures(ours, _call_ours, shape, batch, device, args, bf16=bf16)
            b = train_figures(theirs, getattr(diffusers_models, caller), shape, batch, device, args,
                              bf16=bf16)
            rows.append({
                "model": name, "precision": "bf16-autocast" if bf16 else "fp32", "batch": batch,
                "params_ours": sum(p.numel() for p in ours.parameters()),
                "params_diffusers": sum(p.numel() for p in theirs.parameters()),
                "param_matched": matched,
                "ours_img_per_s": a["train_img_per_s"], "diffusers_img_per_s": b["train_img_per_s"],
                "ours_gflop_per_s": a["gflop_per_s"], "diffusers_gflop_per_s": b["gflop_per_s"],
                "ratio": round(a["train_img_per_s"] / b["train_img_per_s"], 3),
            })
            del ours, theirs
    return rows


def options(args, device) -> list[dict]:
    """The DDPM U-Net (or --options-model) with one option changed at a time."""
    name = args.options_model
    make, shape, default_batch = MODELS[name]
    batch = args.batch or default_batch
    rows = []

    def fresh():
        torch.manual_seed(0)
        return make().to(device)

    def add(option, train=None, sample=None, note=""):
        rows.append({"option": option, "train_img_per_s": train, "sample_img_nfe_per_s": sample,
                     "note": note})

    net = fresh()
    add("baseline (fp32, SDPA, CFG batched)",
        train_figures(net, _call_ours, shape, batch, device, args)["train_img_per_s"],
        sampling_img_per_nfe_s(net, shape, batch, device, args))
    net = fresh().to(memory_format=torch.channels_last)
    add("channels_last", train_figures(net, _call_ours, shape, batch, device, args,
                                       channels_last=True)["train_img_per_s"])
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        net = fresh()
        add("attention: math kernel instead of SDPA's",
            train_figures(net, _call_ours, shape, batch, device, args)["train_img_per_s"])
    if native_bf16(device):
        net = fresh()
        add("bf16 autocast", train_figures(net, _call_ours, shape, batch, device, args,
                                           bf16=True)["train_img_per_s"],
            sampling_img_per_nfe_s(net, shape, batch, device, args, bf16=True))
    else:
        add("bf16 autocast", note="skipped: no native bf16 on this device (emulated, ~100x slower)")
    if device.type == "cuda":
        net = fresh()
        add("fused AdamW", train_figures(net, _call_ours, shape, batch, device, args,
                                         fused=True)["train_img_per_s"])
    else:
        add("fused AdamW", note="skipped: CUDA only")
    if args.compile:
        net = torch.compile(fresh())
        add("torch.compile", train_figures(net, _call_ours, shape, batch, device, args)["train_img_per_s"],
            note="after compilation (excluded from the timing)")
        del net
        torch._dynamo.reset()  # no compiled code or guards leak into the next measurement
    else:
        add("torch.compile", note="not run (pass --compile; compiling takes minutes on a CPU)")
    net = fresh()
    add("CFG as two forwards", sample=sampling_img_per_nfe_s(net, shape, batch, device, args,
                                                             two_forwards=True))
    return rows


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["unet_small", "unet_ddpm_cifar10", "dit_s_2"],
                   choices=sorted(MODELS))
    p.add_argument("--diffusers", nargs="*", default=None, choices=sorted(DIFFUSERS_PAIRS),
                   help="side by side with diffusers (default: unet_ddpm_cifar10 dit_s_2 when "
                        "diffusers is installed; pass no names to skip)")
    p.add_argument("--options", action="store_true", help="measure each option on and off")
    p.add_argument("--options-model", default="unet_ddpm_cifar10", choices=sorted(MODELS))
    p.add_argument("--compile", action="store_true", help="include torch.compile in --options")
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
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: per model)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in the throughput table")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--readme", action="store_true", help="rewrite README.md's Benchmarks section")
    p.add_argument("--from-json", default=None, help="with --readme: results from this file")
    args = p.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
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
            "settings": {"warmup": args.warmup, "repeats": args.repeats, "batch": args.batch},
            "throughput": throughput(args, device),
            "diffusers": versus_diffusers(args, device) if args.diffusers else [],
            "options": options(args, device) if args.options else [],
        }
        if args.samplers:
            result["samplers"] = sampler_comparison(args)
    print(f"machine: {result['machine']}")
    print_table("throughput", result["throughput"])
    print_table("side by side with diffusers (training step)", result["diffusers"])
    print_table(f"options ({args.options_model})", result["options"])
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
        write_readme_section(ROOT / "README.md", result)
    return result


if __name__ == "__main__":
    main()
