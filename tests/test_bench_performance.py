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


def test_diffusers_loop_samplers_cover_the_cosine_tail_that_breaks_the_default_grid():
    """On squaredcos_cap_v2 diffusers' default DPM-Solver++(2M) grid starts at t = 999 (alpha_bar
    2.4e-9), where a 1% eps error becomes a large x0 error; the configurations the time-to-quality
    benchmark also tries (x0 clipping, leading spacing) do not pay it. Data: a point mass at 0, so
    every exact sampler returns 0."""
    pytest.importorskip("diffusers")
    from types import SimpleNamespace

    import diffusers
    import torch

    from diffusion_lab.bench import diffusers_loop as dl

    ddpm = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    ab = ddpm.alphas_cumprod

    class OnePercentOff(torch.nn.Module):  # eps* = x / sqrt(1 - ab_t), scaled by 1.01
        def forward(self, x, t, class_labels=None):
            return SimpleNamespace(sample=1.01 * x / (1 - ab[t.long()]).sqrt().view(-1, 1, 1, 1))

    labels = torch.zeros(64, dtype=torch.long)
    err = {name: dl.sample(OnePercentOff(), ddpm, labels, (1, 8, 8), scheduler=cls,
                           options=opts).abs().mean().item() for name, cls, opts in dl.SAMPLERS}
    assert set(err) >= {"DPM-Solver++(2M)", "DPM-Solver++(2M), clip x0", "UniPC bh2, clip x0"}
    default = err.pop("DPM-Solver++(2M)")
    assert max(err.values()) * 5 < default, (default, err)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_time_to_quality_trains_both_sides_and_judges_each_budget(shared_cache):
    from diffusion_lab.bench.diffusers_loop import SAMPLERS
    from diffusion_lab.bench.time_to_quality import time_to_quality

    r = time_to_quality([0.3, 0.6], samples_per_class=1, cache_dir=shared_cache, progress=lambda s: None)
    # diffusers' row at each budget is its best configuration of those tried, named
    for row in r["rows"]["diffusers"]:
        assert set(row["fid_by_sampler"]) <= {name for name, _, _ in SAMPLERS}
        assert len(row["fid_by_sampler"]) >= len(SAMPLERS) - 1
        assert row["fid"] == min(row["fid_by_sampler"].values())
        assert row["fid_by_sampler"][row["sampler"]] == row["fid"]
    assert all(row["sampler"] == "dpmpp_2m, LogSNRSpacing" for row in r["rows"]["diffusion-lab"])
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


def test_time_to_quality_readme_lines_name_each_rows_sampler_and_the_configurations_tried():
    from diffusion_lab.bench.readme_performance import time_to_quality_lines

    tried = {"DPM-Solver++(2M)": 15.5, "DPM-Solver++(2M), clip x0": 0.9}
    t = {"budgets": [60, 120], "samples": 1000, "seed": 12345, "sampler": "20 NFE",
         "params_ours": 100, "params_diffusers": 100, "reference": {}, "target_fid": 0.9,
         "seconds_ours": 60, "seconds_diffusers": 120, "speedup": 2.0,
         "rows": {"diffusion-lab": [{"seconds": 60, "steps": 10, "fid": 0.5, "accuracy": 0.9,
                                     "sampler": "dpmpp_2m, LogSNRSpacing"}],
                  "diffusers": [{"seconds": 120, "steps": 9, "fid": 0.9, "accuracy": 0.8,
                                 "sampler": "DPM-Solver++(2M), clip x0", "fid_by_sampler": tried}]}}
    text = "\n".join(time_to_quality_lines(t))
    assert "| diffusers | 120 | 9 | 0.9 | 0.8 | DPM-Solver++(2M), clip x0 |" in text
    assert "| diffusion-lab | 60 | 10 | 0.5 | 0.9 | dpmpp_2m, LogSNRSpacing |" in text
    assert "`DPM-Solver++(2M)`; `DPM-Solver++(2M), clip x0`" in text
    assert "ratio 2.0" in text
