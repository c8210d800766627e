"""The performance modes of scripts/benchmark.py at tiny size: scaling tables, time to quality,
the GPU check's dry run and the README sections generated from their JSON (no timing asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench import load_script
from test_resume import one_thread  # noqa: F401

from diffusion_lab.bench.readme import END, START
from diffusion_lab.bench.time_to_quality import seconds_to_reach

ROOT = Path(__file__).resolve().parents[1]


def readme(tmp_path) -> Path:
    path = tmp_path / "README.md"
    path.write_text(f"# x\n{START}\n{END}\n")
    return path


def test_seconds_to_reach_is_the_first_budget_at_or_below_the_target():
    rows = [{"seconds": 30, "fid": 9.0}, {"seconds": 60, "fid": 4.0}, {"seconds": 120, "fid": 3.0}]
    assert seconds_to_reach(rows, 4.0) == 60
    assert seconds_to_reach(rows, 10.0) == 30
    assert seconds_to_reach(rows, 2.0) is None


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_scaling_tables_from_the_benchmark(tmp_path, shared_cache):
    bench = load_script("benchmark")
    out = tmp_path / "scaling.json"
    result = bench.main(["--models", "--diffusers", "--scaling", "--resolutions", "8,28",
                         "--scaling-models", "unet_small,dit_tiny",
                         "--scaling-batches", "2", "--nfes", "2,3", "--sample-counts", "4",
                         "--fid-counts", "8,16", "--cache-dir", str(shared_cache), "--warmup", "0",
                         "--repeats", "1", "--json", str(out), "--readme",
                         "--readme-path", str(readme(tmp_path))])
    s = result["scaling"]
    assert [(r["model"], r["resolution"]) for r in s["training"]] == [
        ("unet_small", 8), ("unet_small", 28), ("dit_tiny", 8), ("dit_tiny", 28)]
    for r in s["training"]:
        assert r["train_img_per_s"] > 0 and r["gflop_per_s"] > 0
    assert [(r["nfe"], r["samples"]) for r in s["sampling"]] == [(2, 4), (3, 4)]
    for r in s["sampling"]:
        assert r["img_nfe_per_s"] == pytest.approx(r["samples"] * r["nfe"] / r["seconds"], rel=0.02)
    assert [r["samples"] for r in s["fid"]] == ["reference (cached)", 8, 16]
    text = (tmp_path / "README.md").read_text()
    assert "| unet_small | 28 | 2 | fp32 |" in text and "| 3 | 4 |" in text and "| 16 |" in text
    # --from-json renders the same section from the written JSON
    (tmp_path / "again").mkdir()
    again = bench.main(["--from-json", str(out), "--readme", "--readme-path",
                        str(readme(tmp_path / "again"))])
    assert again["scaling"] == json.loads(out.read_text())["scaling"]
    assert (tmp_path / "again" / "README.md").read_text() == text


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_time_to_quality_trains_both_sides_and_judges_each_budget(shared_cache):
    from diffusion_lab.bench.time_to_quality import time_to_quality

    r = time_to_quality([0.3, 0.6], samples_per_class=1, cache_dir=shared_cache, progress=lambda s: None)
    # the diffusers loop is the same size as the default model (within 0.1% of parameters)
    assert abs(r["params_diffusers"] - r["params_ours"]) < 1e-3 * r["params_ours"]
    for side in ("diffusion-lab", "diffusers"):
        rows = r["rows"][side]
        assert [row["seconds"] for row in rows] == [0.3, 0.6]
        assert 1 <= rows[0]["steps"] <= rows[1]["steps"]  # snapshots in training order
        for row in rows:
            assert math.isfinite(row["fid"]) and 0.0 <= row["accuracy"] <= 1.0
    assert r["samples"] == 10 and r["target_fid"] == r["rows"]["diffusers"][-1]["fid"]
    assert r["seconds_diffusers"] == seconds_to_reach(r["rows"]["diffusers"], r["target_fid"])


@pytest.mark.slow
def test_gpu_check_dry_run_writes_json_the_readme_renders(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
           "DIFFUSION_LAB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run",
                           str(tmp_path / "gpu")], env=env, check=False, capture_output=True,
                          text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    gpu = json.loads((tmp_path / "gpu" / "gpu.json").read_text())["gpu"]
    assert gpu["dry_run"] and [(r["model"], r["precision"]) for r in gpu["rows"]] == [
        ("unet_tiny", "fp32"), ("unet_tiny", "bf16-autocast"), ("dit_tiny", "fp32"),
        ("dit_tiny", "bf16-autocast")]
    assert gpu["default_run"].startswith("`python scripts/train.py trainer=")
    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps({"machine": "test CPU", "settings": {"warmup": 1, "repeats": 3},
                               "throughput": [], "diffusers": [], "options": []}))
    bench = load_script("benchmark")
    bench.main(["--from-json", f"{cpu},{tmp_path / 'gpu' / 'gpu.json'}", "--readme",
                "--readme-path", str(readme(tmp_path))])
    text = (tmp_path / "README.md").read_text()
    assert "On a GPU (`bash scripts/gpu_check.sh`)" in text and "| dit_tiny | bf16-autocast |" in text
    assert "Default run equivalent: `python scripts/train.py" in text
