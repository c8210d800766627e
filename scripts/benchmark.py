"""Throughput benchmarks: python scripts/benchmark.py [--models unet_small dit_s_2] [--json out.json]

For each backbone: training images/s for a full optimizer step (forward, loss, backward, AdamW),
sampling images/s per network evaluation (CFG as one batched forward), parameter count and, on
CUDA, peak memory. Median of --repeats timed runs after --warmup untimed ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from diffusion_lab.backbones import DiT, UNet
from diffusion_lab.guidance import classifier_free
from diffusion_lab.objectives import DenoisingObjective
from diffusion_lab.parametrization import EpsPrediction
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.schedules import cosine_schedule

MODELS = {
    # name: (constructor, input shape (C, H, W), default batch)
    "unet_small": (lambda: UNet(image_size=8, in_channels=1, base_channels=32, channel_mult=(1, 2),
                                attention_resolutions=(4,), num_heads=4, groups=8, num_classes=10),
                   (1, 8, 8), 128),
    "unet_ddpm_cifar10": (lambda: UNet.ddpm_cifar10(num_classes=10), (3, 32, 32), 8),
    "dit_s_2": (lambda: DiT(image_size=32, patch_size=2, in_channels=4, hidden_size=384, depth=12,
                            num_heads=6, num_classes=10), (4, 32, 32), 8),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(name, device, batch, warmup, repeats, bf16: bool) -> dict:
    make, shape, default_batch = MODELS[name]
    batch = batch or default_batch
    torch.manual_seed(0)
    net = make().to(device)
    schedule = cosine_schedule()
    objective = DenoisingObjective(schedule, EpsPrediction())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x0 = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def train_step():
        with autocast:
            loss = objective(net, x0, y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_train = timed(train_step, device, warmup, repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None

    denoiser = classifier_free(VPDenoiser(net.eval(), schedule, EpsPrediction()), 3.0, 10)
    sigma = torch.full((batch,), 10.0, device=device)

    @torch.no_grad()
    def nfe():
        with autocast:
            denoiser(x0, sigma, y)

    t_nfe = timed(nfe, device, warmup, repeats)
    return {
        "model": name,
        "device": device.type,
        "precision": "bf16-autocast" if bf16 else "fp32",
        "batch": batch,
        "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "train_img_per_s": round(batch / t_train, 1),
        "sample_img_nfe_per_s": round(batch / t_nfe, 1),
        "peak_mem_MiB": None if peak is None else round(peak, 1),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["unet_small", "dit_s_2"], choices=sorted(MODELS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: per model)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast instead of fp32")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = [bench_model(m, device, args.batch, args.warmup, args.repeats, args.bf16) for m in args.models]
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    if args.json:
        meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
