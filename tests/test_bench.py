"""Benchmark code at tiny size: it runs, its comparisons are like for like, and the sampler
comparison against diffusers is exact (no timing is asserted anywhere)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from diffusion_lab.bench.readme import END, START, write_readme_section

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_reports_each_model_with_flops(tmp_path):
    bench = load_script("benchmark")
    out = tmp_path / "bench.json"
    result = bench.main(["--models", "unet_small", "--diffusers", "--batch", "4", "--warmup", "0",
                         "--repeats", "1", "--json", str(out)])
    (row,) = result["throughput"]
    assert row["model"] == "unet_small" and row["batch"] == 4
    assert row["params_M"] == 1.08
    assert row["train_img_per_s"] > 0 and row["sample_img_nfe_per_s"] > 0
    # a training step costs ~3x the forward FLOPs: far more than the parameter count
    assert 3 * 2 * 1.08e6 / 1e9 < row["gflop_per_img"] < 1.0
    assert json.loads(out.read_text())["throughput"] == result["throughput"]


def test_readme_section_is_rewritten_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\nbefore\n{START}\nold figures\n{END}\nafter\n")
    result = {"machine": "test CPU", "settings": {"warmup": 1, "repeats": 3},
              "throughput": [{"model": "unet_small", "params_M": 1.08, "precision": "fp32",
                              "batch": 4, "train_img_per_s": 12.5, "gflop_per_s": 80.0}],
              "diffusers": [], "options": []}
    write_readme_section(readme, result)
    text = readme.read_text()
    assert text.startswith("# title\nbefore\n" + START) and text.endswith(END + "\nafter\n")
    assert "old figures" not in text and "| unet_small | 1.08 | fp32 | 4 | 12.5 | 80.0 |" in text
    assert "test CPU" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        write_readme_section(readme, result)


def test_interleaved_timing_alternates_the_sides_round_by_round():
    import torch

    from diffusion_lab.bench.timing import interleaved_median_seconds

    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    seconds = interleaved_median_seconds(fns, torch.device("cpu"), warmup=1, repeats=4)
    # warm-up in order, then A B, B A, A B, B A: neither side always runs first
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())


def test_options_table_times_each_option_against_the_baseline():
    bench = load_script("benchmark")
    result = bench.main(["--models", "--diffusers", "--options", "--options-model", "unet_tiny",
                         "--batch", "2", "--warmup", "0", "--repeats", "1"])
    rows = {r["option"]: r for r in result["options"]}
    timed = [r for r in rows.values() if r["train_img_per_s"] is not None]
    assert {"baseline (fp32, SDPA, CFG batched)", "channels_last",
            "attention: math kernel instead of SDPA's"} <= {r["option"] for r in timed}
    for r in timed:  # each measured beside the baseline, not against a figure from earlier
        assert r["vs_baseline"] > 0
    assert rows["CFG as two forwards"]["vs_baseline"] is None
    assert rows["fused AdamW"]["note"] == "skipped: CUDA only"
