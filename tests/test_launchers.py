"""Hydra launchers: the SLURM preset composes as a cluster job needs; local sweeps run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def compose_with_hydra(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_preset_matches_trainer():
    cfg = compose_with_hydra(
        "hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=600",
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "gpu"
    # One task per GPU on each node: what Lightning's DDP expects under SLURM.
    assert launcher["gpus_per_node"] == 4 and launcher["tasks_per_node"] == 4
    assert launcher["nodes"] == 2
    assert launcher["timeout_min"] == 600
    assert launcher["max_num_timeout"] >= 1  # requeue on timeout / pre-emption
    assert cfg.trainer.strategy == "ddp"


def test_joblib_launcher_preset_composes():
    cfg = compose_with_hydra("hydra/launcher=local_parallel")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.slow
def test_submitit_local_two_job_sweep(tmp_path):
    tiny = [
        "backbone.base_channels=16", "backbone.num_heads=2", "logger=none", "eval.enabled=false",
        "trainer.max_steps=2", "trainer.enable_progress_bar=false", "callbacks=none",
        "data.module.batch_size=32", "sampler.steps=2",
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=submitit_local",
         "hydra.launcher.timeout_min=10", "schedule=linear,cosine", *tiny,
         f"paths.output_root={tmp_path}", "name=sub"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (sweep,) = list((tmp_path / "sub" / "multirun").iterdir())
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["global_step"] == 2
    overrides = sorted((sweep / j / ".hydra" / "overrides.yaml").read_text() for j in ("0", "1"))
    assert "schedule=cosine" in overrides[0] and "schedule=linear" in overrides[1]
    summary = json.loads((sweep / "summary.json").read_text())  # written in the launching process
    assert [row[:1] for row in summary["rows"]] == [["0"], ["1"]]


@pytest.mark.slow
def test_optuna_sweep_minimises_reported_fid(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    tiny = [
        "backbone.base_channels=16", "backbone.num_heads=2", "logger=none", "callbacks=none",
        "trainer.max_steps=3", "trainer.enable_progress_bar=false", "data.module.batch_size=32",
        "sampler.steps=2", "eval.samples_per_class=3", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "DIFFUSION_LAB_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "hparams_search=digits_optuna", *tiny,
         f"paths.output_root={tmp_path}", "name=opt"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (sweep,) = list((tmp_path / "opt" / "multirun").iterdir())
    best = (sweep / "optimization_results.yaml").read_text()
    fids = [json.loads((sweep / j / "metrics.json").read_text())["fid_classifier"] for j in ("0", "1")]
    # The sweeper received each trial's FID and reports the smaller as best.
    assert f"best_value: {min(fids)}" in best
