"""README tables of the performance measurements: scaling, time to quality and the GPU run
(``scripts/gpu_check.sh``), from the benchmark JSON."""

from __future__ import annotations


def table(rows: list[dict], cols: list[tuple[str, str]]) -> list[str]:
    """A Markdown table of ``rows`` with columns (key, header); [] for no rows."""
    if not rows:
        return []
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(k) is None else str(r.get(k)) for k, _ in cols) + " |")
    return out + [""]


def scaling_lines(s: dict) -> list[str]:
    lines = []
    if s.get("training"):
        lines += [("Training step against resolution and batch (unet_small's widths with attention "
                   "at the lowest level, and the DiT preset named, 10 classes; 1 channel at 8 and 28, 3 "
                   "at 32 and 64; forward "
                   "MiB: memory allocated by the forward and held for backward):"), ""]
        lines += table(s["training"], [
            ("model", "model"), ("resolution", "resolution"), ("batch", "batch"),
            ("precision", "precision"), ("train_img_per_s", "train img/s"),
            ("gflop_per_s", "GFLOP/s"), ("forward_MiB", "forward MiB"),
            ("peak_mem_MiB", "CUDA peak MiB")])
    if s.get("sampling"):
        lines += [("Sampling the default digits model (DPM-Solver++(2M), guidance scale 1, "
                   "batches of 500) against NFE and sample count:"), ""]
        lines += table(s["sampling"], [("nfe", "NFE"), ("samples", "samples"),
                                       ("seconds", "seconds"), ("img_nfe_per_s", "img x NFE / s")])
    if s.get("fid"):
        lines += ["FID + classifier accuracy of n digits images, real statistics cached:", ""]
        lines += table(s["fid"], [("samples", "samples"), ("seconds", "seconds")])
    return lines


def time_to_quality_lines(t: dict) -> list[str]:
    rows = [{"side": side, **r} for side, rs in t["rows"].items() for r in rs]
    ref = t.get("reference") or {}
    lines = [(f"Time to quality (`--time-to-quality`): the default digits run "
              f"({t['params_ours']:,} parameters) and a diffusers-example-style loop "
              f"(UNet2DModel, {t['params_diffusers']:,} parameters, DDPMScheduler, AdamW + "
              f"warm-up + cosine, EMAModel), each trained once for {max(t['budgets']):g} s; the "
              f"EMA weights at each budget sample {t['samples']} images (seed {t['seed']}, "
              f"{t['sampler']}), judged by the data classifier (FID on its features; held-out "
              f"real images: FID {ref.get('fid_classifier_val_vs_train', float('nan')):.2f}, "
              f"accuracy {ref.get('classifier_val_accuracy', float('nan')):.3f})"
              + (f"; on {t['machine']}" if t.get("machine") else "") + ":"), ""]
    lines += table(rows, [("side", "library"), ("seconds", "training s"), ("steps", "steps"),
                          ("fid", "FID"), ("accuracy", "accuracy"),
                          ("sampler", "sampler (20 NFE)"), ("sample_seconds", "sampling s")])
    tried = next((r.get("fid_by_sampler") for r in t["rows"].get("diffusers", [])
                  if r.get("fid_by_sampler")), None)
    if tried:
        lines += [("diffusers' configurations tried at every budget (the best counts): "
                   + "; ".join(f"`{k}`" for k in tried) + ". On this cosine schedule the default "
                   "DPM-Solver++(2M) grid starts at t = 999, where alpha_bar is 2.4e-9 and the "
                   "data prediction multiplies the network's error by ~2e4: without x0 clipping "
                   "(`thresholding=True, sample_max_value=1`, diffusion-lab's `clip_denoised`) "
                   "or a `leading` grid, that error reaches the samples."), ""]
    if t.get("speedup"):
        lines += [(f"Seconds to reach FID {t['target_fid']} (the diffusers loop's at its largest "
                   f"budget): diffusion-lab {t['seconds_ours']:g}, diffusers "
                   f"{t['seconds_diffusers']:g} (ratio {t['speedup']}; resolution: the budgets "
                   "measured)."), ""]
    else:
        lines += [(f"FID {t['target_fid']} (the diffusers loop's at its largest budget) reached "
                   f"by diffusion-lab at: {t['seconds_ours']} s of the budgets measured."), ""]
    return lines


def gpu_lines(g: dict) -> list[str]:
    lines = [f"On a GPU (`bash scripts/gpu_check.sh`): {g.get('machine', '?')}.", ""]
    lines += table(g.get("rows", []), [
        ("model", "model"), ("precision", "precision"), ("layout", "setting"), ("batch", "batch"),
        ("train_img_per_s", "train img/s"), ("gflop_per_s", "GFLOP/s"), ("mfu", "MFU"),
        ("peak_mem_MiB", "peak MiB")])
    if g.get("default_run"):
        lines += [f"Default run equivalent: {g['default_run']}", ""]
    return lines


def performance_sections(result: dict) -> list[str]:
    lines = []
    if result.get("profile"):
        lines += [("Where a training step spends its time (`--profile`: torch.profiler self "
                   "time per op, ms per step, ours beside diffusers'):"), ""]
        lines += table(result["profile"], [("setting", "setting"), ("op", "op"),
                                           ("ours_ms", "ours ms"), ("diffusers_ms", "diffusers ms")])
    if result.get("scaling"):
        lines += scaling_lines(result["scaling"])
    if result.get("time_to_quality"):
        lines += time_to_quality_lines(result["time_to_quality"])
    if result.get("gpu"):
        lines += gpu_lines(result["gpu"])
    return lines
