"""The Benchmarks section of README.md, generated from the benchmark results (JSON)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

from diffusion_lab.bench.readme_performance import performance_sections
from diffusion_lab.bench.readme_performance import table as _table

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = "unknown CPU"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    what = line.split(":", 1)[1].strip()
                    break
        except OSError:
            what = platform.processor() or platform.machine()
        cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
        what += f", {os.cpu_count()} cores, {torch.get_num_threads()} threads, {cap}"
    return f"{what}; torch {torch.__version__}"


def render(result: dict) -> str:
    command = result.get("settings", {}).get("command", "python scripts/benchmark.py --options")
    lines = [f"Measured by `{command}` on: {result['machine']}.",
             (f"Median of {result['settings']['repeats']} timed runs after "
             f"{result['settings']['warmup']} warm-up runs."), ""]
    if result.get("throughput"):
        lines += ["Training step (forward, eps-MSE, backward, AdamW) and guided sampling evaluations:", ""]
        lines += _table(result["throughput"], [
            ("model", "model"), ("params_M", "params (M)"), ("precision", "precision"),
            ("batch", "batch"), ("train_img_per_s", "train img/s"),
            ("gflop_per_s", "GFLOP/s"), ("sample_img_nfe_per_s", "sample img/s per NFE"),
            ("peak_mem_MiB", "peak MiB")])
    if result.get("diffusers"):
        lines += [("Side by side with diffusers, same process, batch, input and precision, the two "
                   "timed in alternation (ratio = "
                  "diffusion-lab / diffusers training throughput):"), ""]
        lines += _table(result["diffusers"], [
            ("model", "model"), ("precision", "precision"), ("batch", "batch"),
            ("params_ours", "params (ours)"), ("params_diffusers", "params (diffusers)"),
            ("setting", "setting"), ("ours_config", "ours"), ("diffusers_config", "diffusers"),
            ("ours_img_per_s", "ours img/s"), ("diffusers_img_per_s", "diffusers img/s"),
            ("ratio", "ratio")])
    if result.get("options"):
        lines += [("One option changed at a time (DDPM CIFAR-10 U-Net), each timed in alternation "
                   "with the baseline (x baseline: the ratio of their training img/s):"), ""]
        lines += _table(result["options"], [
            ("option", "option"), ("train_img_per_s", "train img/s"), ("vs_baseline", "x baseline"),
            ("forward_MiB", "forward MiB"), ("sample_img_nfe_per_s", "sample img/s per NFE"),
            ("note", "note")])
    lines += performance_sections(result)
    if result.get("samplers"):
        s = result["samplers"]
        lines += [("Sampler comparison (`python scripts/benchmark.py --samplers`): the best "
                   "configuration of each library within each NFE budget, every diffusers "
                   "scheduler and option searched like ours. Error: exact W2 of the output law on "
                   "Gaussian data (dim 16, exact predictor); sliced W2 of "
                   f"{s['samples']} samples on a 2-D ring of 8 Gaussians (exact posterior "
                   "mean; floor = two data sample sets):"), ""]
        rows = [{"case": w["case"], "schedule": w["schedule"], "nfe": w["budget"],
                 "ours": _winner(w["diffusion-lab"]), "theirs": _winner(w["diffusers"]),
                 "ratio": round(w["ratio"], 3),
                 "floor": "" if w["floor"] is None else round(w["floor"], 4)}
                for w in s["winners"]]
        lines += _table(rows, [("case", "case"), ("schedule", "schedule"), ("nfe", "NFE"),
                               ("ours", "best diffusion-lab"), ("theirs", "best diffusers"),
                               ("ratio", "ours / diffusers"), ("floor", "floor")])
    return "\n".join(lines).rstrip() + "\n"


def _winner(r: dict) -> str:
    return f"{r['error']:.4g}: {r['method']} ({r['config']}; {r['steps']} steps)"


def write_readme_section(readme: Path, result: dict) -> None:
    """Replace the text between the benchmark markers of ``readme``, and nothing else."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} markers")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    readme.write_text(pattern.sub(lambda m: f"{START}\n{render(result)}{END}", text, count=1))
