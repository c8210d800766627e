"""The GPU check (``scripts/gpu_check.sh``): training-step rows on CUDA for the DDPM U-Net and
DiT-B/2, fp32 and bf16 autocast, eager and torch.compile, fused AdamW; bf16 model-FLOPs
utilisation (MFU = achieved FLOP/s / the GPU's dense bf16 peak); and a short default run.
Writes ``{"machine": ..., "gpu": {...}}`` JSON that ``scripts/benchmark.py --readme --from-json
cpu.json,gpu.json`` turns into the README's GPU section.

``--dry-run`` runs the same code path on whatever device there is at tiny size (unet_tiny,
dit_tiny, batch 2, no compilation, a 2-step default run): it checks the script, not the GPU.

    MFU = (FLOPs of one step, counted by FlopCounterMode) / (seconds per step) / peak
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from diffusion_lab.bench.readme import machine_description
from diffusion_lab.bench.training_step import MODELS, call_ours, train_figures

# dense bf16 tensor-core peaks, TFLOP/s (vendor data sheets, without sparsity)
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0,
                    "RTX 4090": 165.0, "V100": 125.0}


def bf16_peak_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak: $GPU_PEAK_TFLOPS, else looked up by name; None on CPUs."""
    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def rows(device: torch.device, dry_run: bool) -> list[dict]:
    models = {"unet_tiny": 2, "dit_tiny": 2} if dry_run else {"unet_ddpm_cifar10": 128, "dit_b_2": 256}
    layouts = ["eager"] if dry_run else ["eager", "compiled"]
    args = SimpleNamespace(warmup=1 if dry_run else 3, repeats=1 if dry_run else 10)
    peak = bf16_peak_tflops(device)
    out = []
    for name, batch in models.items():
        make, shape, _ = MODELS[name]
        for bf16 in (False, True):
            for layout in layouts:
                torch.manual_seed(0)
                net = make().to(device)
                cl = name.startswith("unet")
                if cl:
                    net = net.to(memory_format=torch.channels_last)
                if layout == "compiled":
                    net = torch.compile(net)
                f = train_figures(net, call_ours, shape, batch, device, args, bf16=bf16,
                                  channels_last=cl, fused=device.type == "cuda")
                if layout == "compiled":
                    torch._dynamo.reset()
                mfu = None if not (bf16 and peak) else round(f["gflop_per_s"] / (peak * 1e3), 3)
                out.append({"model": name, "precision": "bf16-autocast" if bf16 else "fp32",
                            "layout": layout + (" channels_last" if cl else "")
                            + (", fused AdamW" if device.type == "cuda" else ""),
                            "batch": batch, **f, "mfu": mfu})
                del net
                print(json.dumps(out[-1]), flush=True)
    return out


def default_run(device: torch.device, dry_run: bool, run_root: Path) -> str:
    """Seconds of ``scripts/train.py`` with the default config on this device (a short run)."""
    steps = 2 if dry_run else 300
    trainer = "trainer=gpu" if device.type == "cuda" else "trainer=cpu"
    cmd = [sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / "train.py"),
           trainer, f"trainer.max_steps={steps}", "logger=csv", "callbacks=minimal",
           "trainer.enable_progress_bar=false", "eval.enabled=false",
           f"paths.output_root={run_root}", "name=gpu_check"]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    return (f"`python scripts/train.py {trainer} trainer.max_steps={steps}` (digits, unet_small, "
            f"batch 128) took {seconds:.1f} s including start-up and the end-of-run sample grid")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--dry-run", action="store_true", help="tiny models, any device")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.dry_run:
        raise SystemExit("gpu_check: no CUDA device here (use --dry-run to check the script)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_description(device), "gpu": {
        "machine": machine_description(device), "dry_run": args.dry_run,
        "bf16_peak_tflops": bf16_peak_tflops(device), "rows": rows(device, args.dry_run)}}
    result["gpu"]["default_run"] = default_run(device, args.dry_run, out.parent / "runs")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
