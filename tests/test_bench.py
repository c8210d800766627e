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
