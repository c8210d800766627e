"""The acceptance run: `make train` with no arguments, as a new user runs it (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_default_run_makes_recognisable_digits(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["WANDB_MODE"] = "offline"
    env["DIFFUSION_LAB_CACHE"] = str(tmp_path / "cache")
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"paths.output_root={tmp_path}",
         "trainer.enable_progress_bar=false"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    (run_dir,) = list((tmp_path / "default").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())

    # The default run's acceptance figure: class-conditional samples at w=1 recognised >= 95%.
    assert metrics["sample_count"] == 1000
    assert metrics["sample_accuracy_w1"] >= 0.95, metrics
    assert metrics["classifier_val_accuracy"] >= 0.97, metrics  # the judge itself is reliable
    assert metrics["global_step"] == 1500

    # One row per digit in the final grid: 10 rows of 10 samples, upscaled 4x, 1px padding.
    grid = Image.open(run_dir / "media" / "samples_grid" / "step0001500.png")
    assert grid.size == (10 * 33 + 1, 10 * 33 + 1)
    # W&B ran offline and wrote its run files under the run directory.
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
