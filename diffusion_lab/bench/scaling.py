"""How cost grows with the work: training img/s and memory against batch and resolution,
sampling time against NFE and sample count, FID evaluation time against sample count."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from diffusion_lab.backbones import UNet
from diffusion_lab.bench.timing import significant
from diffusion_lab.bench.training_step import call_ours, train_figures
from diffusion_lab.tasks.build import backbone_preset


def scaled_model(kind: str, resolution: int, channels: int):
    """The U-Net (unet_small's widths, attention at the lowest level) or a DiT preset
    (``dit_s_2``, ``dit_tiny``, ...) at ``resolution``."""
    if kind == "unet_small":
        return UNet(image_size=resolution, in_channels=channels, base_channels=32,
                    channel_mult=(1, 2), attention_resolutions=(resolution // 2,), num_heads=4,
                    groups=8, num_classes=10)
    return backbone_preset(kind, image_size=resolution, channels=channels, num_classes=10)


def training_scaling(args, device) -> list[dict]:
    rows = []
    for kind in args.scaling_models:
        for res in args.resolutions:
            channels = 1 if res in (8, 28) else 3
            for batch in args.scaling_batches:
                torch.manual_seed(0)
                net = scaled_model(kind, res, channels).to(device)
                f = train_figures(net, call_ours, (channels, res, res), batch, device, args,
                                  bf16=args.bf16)
                rows.append({"model": kind, "resolution": res, "channels": channels,
                             "batch": batch, "precision": "bf16-autocast" if args.bf16 else "fp32",
                             **{k: f[k] for k in ("train_img_per_s", "gflop_per_s", "forward_MiB",
                                                  "peak_mem_MiB")}})
    return rows


def _default_module(cache_dir: Path):
    from diffusion_lab.bench.time_to_quality import default_config
    from diffusion_lab.tasks.build import build_datamodule, build_module

    cfg = default_config(["logger=none", "callbacks=none",
                          f"paths.run_dir={Path(cache_dir).resolve() / 'scaling'}"])
    torch.manual_seed(0)
    return build_module(cfg), build_datamodule(cfg), cfg


def sampling_scaling(args, cache_dir) -> list[dict]:
    """Seconds to draw ``n`` samples at ``nfe`` evaluations, the default digits model
    (untrained weights: the cost does not depend on them) and its sampler (DPM-Solver++(2M),
    guidance scale 1: one evaluation per step), batches of 500."""
    from diffusion_lab.evaluation.samples import generate_samples

    module, _, _ = _default_module(cache_dir)
    rows = []
    for nfe in args.nfes:
        module.sampler.steps = nfe
        for n in args.sample_counts:
            labels = torch.arange(n) % module.num_classes
            start = time.perf_counter()
            generate_samples(module, labels, n, seed=0, guidance_scale=1.0, distributed=False)
            seconds = time.perf_counter() - start
            rows.append({"nfe": nfe, "samples": n, "seconds": significant(seconds),
                         "img_nfe_per_s": significant(n * nfe / seconds)})
    return rows


def fid_scaling(args, cache_dir) -> list[dict]:
    """Seconds of FID + accuracy for ``n`` images with the real statistics already cached
    (their one-off cost is measured too, as ``reference``)."""
    from diffusion_lab.evaluation.judge import SampleJudge

    _, dm, cfg = _default_module(cache_dir)
    judge = SampleJudge.for_data(dm, cache_dir, cfg.data.name)
    start = time.perf_counter()
    judge.real_stats  # noqa: B018 - read (or computed once and written) here, untimed below
    rows = [{"samples": "reference (cached)", "seconds": significant(time.perf_counter() - start)}]
    g = torch.Generator().manual_seed(0)
    for n in args.fid_counts:
        x = torch.rand((n, *dm.shape), generator=g) * 2 - 1
        labels = torch.arange(n) % dm.num_classes
        start = time.perf_counter()
        judge.fid(x), judge.accuracy(x, labels)
        rows.append({"samples": n, "seconds": significant(time.perf_counter() - start)})
    return rows
