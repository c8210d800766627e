"""Training-step throughput per preset, side by side with diffusers, and one option at a time.

Side by side: same process, batch, input and precision, the two libraries' steps timed in
alternation (a drifting machine favours neither). "matched" rows run both libraries in
their default layout; "best" rows give each library every option measured here (fp32 or bf16
autocast as the row says, channels_last or not, and with ``--compile`` torch.compile of the
faster eager layout) and compare the best of each.
"""

from __future__ import annotations

import torch

from diffusion_lab.bench.timing import interleaved_median_seconds, native_bf16, significant
from diffusion_lab.bench.training_step import (
    MODELS,
    call_ours,
    inputs,
    sampling_img_per_nfe_s,
    train_figures,
    train_step,
)

# diffusion-lab preset -> (diffusers builder, how to call it, parameter-matched?)
DIFFUSERS_PAIRS = {
    "unet_ddpm_cifar10": ("unet2d_ddpm_cifar10", "call_unet2d", True),
    "unet_tiny": ("unet2d_tiny", "call_unet2d", True),
    "dit_s_2": ("dit_s_2", "call_dit", False),
}


def _precision(bf16: bool) -> str:
    return "bf16-autocast" if bf16 else "fp32"


def throughput(args, device) -> list[dict]:
    rows = []
    for name in args.models:
        make, shape, default_batch = MODELS[name]
        batch = args.batch or default_batch
        torch.manual_seed(0)
        net = make().to(device)
        row = {"model": name, "device": device.type, "precision": _precision(args.bf16),
               "batch": batch, "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2)}
        row.update(train_figures(net, call_ours, shape, batch, device, args, bf16=args.bf16))
        if getattr(net, "num_classes", 0):
            row["sample_img_nfe_per_s"] = sampling_img_per_nfe_s(net, shape, batch, device, args, args.bf16)
        rows.append(row)
    return rows


def _prepared_step(make, call, shape, batch, device, bf16, layout):
    """One training step of a fresh model in ``layout`` ("default", "channels_last", or
    "compiled" / "compiled channels_last": torch.compile of that layout), over fixed inputs."""
    torch.manual_seed(0)
    net = make().to(device)
    cl = "channels_last" in layout
    if cl:
        net = net.to(memory_format=torch.channels_last)
    if layout.startswith("compiled"):
        net = torch.compile(net)
    x, t, y, eps = inputs(shape, batch, device, cl)
    return train_step(net, call, x, t, y, eps, bf16)


def _rates(sides: dict, shape, batch, device, args, bf16, layouts: dict) -> dict:
    """{side: training img/s} with ``layouts[side]`` for each side, the sides timed in
    alternation (``interleaved_median_seconds``); compilation happens in the untimed warm-up."""
    steps = {side: _prepared_step(*sides[side], shape, batch, device, bf16, layouts[side])
             for side in sides}
    compiled = any(layout.startswith("compiled") for layout in layouts.values())
    warmup = max(args.warmup, 2) if compiled else args.warmup
    try:
        seconds = interleaved_median_seconds(steps, device, warmup, args.repeats)
    finally:
        if compiled:
            torch._dynamo.reset()  # no compiled code or guards leak into the next measurement
    return {side: significant(batch / s) for side, s in seconds.items()}


def _side_by_side(sides: dict, shape, batch, device, args, bf16, compile_too: bool) -> dict:
    """{side: {layout: img/s}}: both eager layouts for every side, each layout's sides timed
    together; with ``compile_too`` torch.compile of each side's faster eager layout, the
    compiled sides timed together as well."""
    rates = {side: {} for side in sides}
    for layout in ("default", "channels_last"):
        for side, rate in _rates(sides, shape, batch, device, args, bf16,
                                 dict.fromkeys(sides, layout)).items():
            rates[side][layout] = rate
    if compile_too:
        layouts = {side: ("compiled" if max(r, key=r.get) == "default" else "compiled channels_last")
                   for side, r in rates.items()}
        for side, rate in _rates(sides, shape, batch, device, args, bf16, layouts).items():
            rates[side][layouts[side]] = rate
    return rates


def versus_diffusers(args, device) -> list[dict]:
    from diffusion_lab.bench import diffusers_models

    rows = []
    for name in args.diffusers:
        builder, caller, matched = DIFFUSERS_PAIRS[name]
        make, shape, default_batch = MODELS[name]
        theirs_make, theirs_call = getattr(diffusers_models, builder), getattr(diffusers_models, caller)
        batch = args.batch or default_batch
        with torch.device("meta"):
            p_ours = sum(p.numel() for p in make().parameters())
            p_theirs = sum(p.numel() for p in theirs_make().parameters())
        precisions = [False, True] if native_bf16(device) else [False]
        for bf16 in precisions:
            # compilation takes minutes on a CPU: at the fastest precision only
            compile_too = (args.compile and name in getattr(args, "compile_models", [name])
                           and bf16 == precisions[-1])
            rates = _side_by_side({"ours": (make, call_ours), "diffusers": (theirs_make, theirs_call)},
                                  shape, batch, device, args, bf16, compile_too)
            ours, theirs = rates["ours"], rates["diffusers"]
            common = {"model": name, "precision": _precision(bf16), "batch": batch,
                      "params_ours": p_ours, "params_diffusers": p_theirs, "param_matched": matched}
            a, b = ours["default"], theirs["default"]
            rows.append({**common, "setting": "matched (default layout)", "ours_config": "default",
                         "diffusers_config": "default", "ours_img_per_s": a,
                         "diffusers_img_per_s": b, "ratio": significant(a / b)})
            a_cfg, b_cfg = max(ours, key=ours.get), max(theirs, key=theirs.get)
            rows.append({**common, "setting": "best of each", "ours_config": a_cfg,
                         "diffusers_config": b_cfg, "ours_img_per_s": ours[a_cfg],
                         "diffusers_img_per_s": theirs[b_cfg],
                         "ratio": significant(ours[a_cfg] / theirs[b_cfg]),
                         "all_ours": ours, "all_diffusers": theirs})
    return rows


def options(args, device) -> list[dict]:
    """The DDPM U-Net (or --options-model) with one option changed at a time."""
    name = args.options_model
    make, shape, default_batch = MODELS[name]
    batch = args.batch or default_batch
    rows = []

    def fresh(**overrides):
        torch.manual_seed(0)
        return make(**overrides).to(device)

    def add(option, figures=None, sample=None, note=""):
        figures = figures or {}
        rows.append({"option": option, "train_img_per_s": figures.get("train_img_per_s"),
                     "vs_baseline": figures.get("vs_baseline"),
                     "forward_MiB": figures.get("forward_MiB"), "sample_img_nfe_per_s": sample,
                     "note": note})

    # every option's step is timed in alternation with the baseline's (vs_baseline: the ratio
    # of their img/s, immune to the machine's drift between one option and the next)
    baseline_net = fresh()
    baseline_step = train_step(baseline_net, call_ours, *inputs(shape, batch, device), False)

    def train(net, **kw):
        return train_figures(net, call_ours, shape, batch, device, args, against=baseline_step, **kw)

    add("baseline (fp32, SDPA, CFG batched)", train(fresh()),
        sampling_img_per_nfe_s(fresh(), shape, batch, device, args))
    add("channels_last", train(fresh().to(memory_format=torch.channels_last), channels_last=True))
    from torch.nn.attention import SDPBackend, sdpa_kernel

    add("attention: math kernel instead of SDPA's",
        train(fresh(), context=lambda: sdpa_kernel(SDPBackend.MATH)))
    add("activation checkpointing (backbone.checkpointing=true)", train(fresh(checkpointing=True)),
        note="forward MiB: memory held for backward")
    if native_bf16(device):
        net = fresh()
        add("bf16 autocast", train(net, bf16=True),
            sampling_img_per_nfe_s(net, shape, batch, device, args, bf16=True))
        add("bf16 autocast + channels_last",
            train(fresh().to(memory_format=torch.channels_last), bf16=True, channels_last=True))
    else:
        add("bf16 autocast", note="skipped: no native bf16 on this device (emulated, ~100x slower)")
    if device.type == "cuda":
        add("fused AdamW", train(fresh(), fused=True))
    else:
        add("fused AdamW", note="skipped: CUDA only")
    if args.compile:
        add("torch.compile", train(torch.compile(fresh())),
            note="after compilation (excluded from the timing)")
        torch._dynamo.reset()  # no compiled code or guards leak into the next measurement
    else:
        add("torch.compile", note="not run (pass --compile; compiling takes minutes on a CPU)")
    add("CFG as two forwards", sample=sampling_img_per_nfe_s(fresh(), shape, batch, device, args,
                                                             two_forwards=True))
    return rows
