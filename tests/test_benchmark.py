"""Benchmark smoke test at tiny size: it runs and reports sane figures (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_reports_each_model(tmp_path):
    bench = load_script("benchmark")
    out = tmp_path / "bench.json"
    rows = bench.main(["--models", "unet_small", "--batch", "4", "--warmup", "0", "--repeats", "1",
                       "--json", str(out)])
    (row,) = rows
    assert row["model"] == "unet_small" and row["batch"] == 4
    assert row["params_M"] == 1.08
    assert row["train_img_per_s"] > 0 and row["sample_img_nfe_per_s"] > 0
    assert json.loads(out.read_text())["results"] == rows
