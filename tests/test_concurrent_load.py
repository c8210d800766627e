"""Robust under load: the default run, a 2-process ``ddp_cpu`` run and an 8-job sampling sweep
through the local (joblib) launcher, started at the same moment on one machine, all complete
with nothing lost: every run in a folder of its own, each with its final checkpoint and
metrics, and ``resume=auto`` never taking the other run's checkpoint (same ``name``, another
number of processes). About 3-5 minutes on a 2-core machine; marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_validation import write_checkpoint

from diffusion_lab.tasks.io import load_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["trainer.max_steps=30", "trainer.val_check_interval=10", "logger=csv", "resume=auto",
         "name=load", "trainer.enable_progress_bar=false", "eval.samples_per_class=5"]


def launch(tmp_path: Path, log: str, script: str, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
           "DIFFUSION_LAB_CACHE": str(tmp_path / "cache")}
    with open(tmp_path / log, "w") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "scripts" / script), *overrides,
                                 f"paths.output_root={tmp_path / 'out'}"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_default_ddp_and_sampling_sweep_at_once_lose_nothing(make_cfg, tmp_path):
    ckpt = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    jobs = {
        "default.log": launch(tmp_path, "default.log", "train.py", *SHORT),
        "ddp.log": launch(tmp_path, "ddp.log", "train.py", *SHORT, "trainer=ddp_cpu"),
        "sweep.log": launch(tmp_path, "sweep.log", "sample.py", "-m", "hydra/launcher=local_parallel",
                            f"ckpt={ckpt}", "seed=0,1,2,3,4,5,6,7", "sampler.steps=5",
                            "samples_per_class=2", "metrics=false", "name=load_sweep"),
    }
    for log, proc in jobs.items():
        assert proc.wait(900) == 0, (tmp_path / log).read_text()[-3000:]

    runs = sorted((tmp_path / "out" / "load").iterdir())
    assert len(runs) == 2  # one folder each
    devices = []
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        last = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
        assert metrics["global_step"] == last["global_step"] == 30
        devices.append(last["diffusion_lab_config"]["trainer"]["devices"])
    assert sorted(devices) == [1, 2]
    for log in ("default.log", "ddp.log"):  # neither resumed the other's checkpoint
        assert "resuming from" not in (tmp_path / log).read_text()

    (sweep,) = (tmp_path / "out" / "load_sweep" / "multirun").iterdir()
    infos = [json.loads((sweep / str(j) / "sample_info.json").read_text()) for j in range(8)]
    assert all((sweep / str(j) / "samples.npz").exists() for j in range(8))
    assert [i["num_samples"] for i in infos] == [20] * 8
