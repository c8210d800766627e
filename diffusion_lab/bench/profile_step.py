"""Where a training step spends its time, op by op, diffusion-lab's U-Net beside diffusers'
UNet2DModel (``scripts/benchmark.py --profile``): torch.profiler's self time per ATen op summed
over ``steps`` steps after a warm-up step, the ops of either side's top ``top`` listed."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from diffusion_lab.bench.training_step import MODELS, call_ours, inputs, train_step


def self_ms_by_op(step, steps: int) -> dict[str, float]:
    step()  # warm-up (first-call allocations, oneDNN primitive creation)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}


def profile_rows(name: str, bf16: bool, channels_last: bool, batch: int | None = None,
                 steps: int = 2, top: int = 12) -> list[dict]:
    from diffusion_lab.bench import diffusers_models
    from diffusion_lab.bench.comparison import DIFFUSERS_PAIRS

    builder, caller, _ = DIFFUSERS_PAIRS[name]
    make, shape, default_batch = MODELS[name]
    batch = batch or default_batch
    x, t, y, eps = inputs(shape, batch, torch.device("cpu"), channels_last)
    times = {}
    for side, build, call in (("ours", make, call_ours),
                              ("diffusers", getattr(diffusers_models, builder),
                               getattr(diffusers_models, caller))):
        torch.manual_seed(0)
        net = build()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        times[side] = self_ms_by_op(train_step(net, call, x, t, y, eps, bf16), steps)
    ops = sorted(set().union(*(sorted(v, key=v.get, reverse=True)[:top] for v in times.values())),
                 key=lambda op: -max(times["ours"].get(op, 0.0), times["diffusers"].get(op, 0.0)))
    rows = [{"op": op, "ours_ms": round(times["ours"].get(op, 0.0), 1),
             "diffusers_ms": round(times["diffusers"].get(op, 0.0), 1)} for op in ops]
    rows.append({"op": "total (all ops)", "ours_ms": round(sum(times["ours"].values()), 1),
                 "diffusers_ms": round(sum(times["diffusers"].values()), 1)})
    label = f"{name}, batch {batch}, {'bf16-autocast' if bf16 else 'fp32'}" + \
        (", channels_last" if channels_last else "")
    return [{"setting": label, **r} for r in rows]
