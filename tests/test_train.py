"""Few-step training runs per backbone, checkpoint -> sample.py round trip, and resume."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.train import train

ROOT = Path(__file__).resolve().parents[1]

# Small and quick: tiny widths, few steps, every callback firing at least once.
FAST = [
    "logger=csv",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "callbacks.checkpoint.every_n_train_steps=2",
    "callbacks.sample_grid.every_n_steps=2",
    "callbacks.sample_grid.samples_per_class=2",
    "callbacks.sample_grid.num_samples=16",
    "data.module.batch_size=32",
    "sampler.steps=3",
    "eval.enabled=false",
    "module.warmup_steps=0",
]
SMALL_UNET = ["backbone.base_channels=16", "backbone.groups=8", "backbone.num_heads=2"]
BACKBONES = {
    "unet": ["backbone=unet_small", *SMALL_UNET],
    "dit": ["backbone=dit_tiny", "backbone.hidden_size=32", "backbone.depth=2", "backbone.num_heads=2"],
    "mlp": ["experiment=toy2d_moons", "backbone.hidden=32", "backbone.depth=2", "data.module.dataset.n=512"],
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_few_step_training_per_backbone(make_cfg, tmp_path, name):
    run_dir = tmp_path / "run"
    cfg = make_cfg(*BACKBONES[name], *FAST, run_dir=run_dir)
    metrics = train(cfg)

    assert metrics["global_step"] == 4
    assert np.isfinite(metrics["train/loss"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "step0000002.ckpt").is_file()
    grids = sorted((run_dir / "media" / "samples_grid").glob("*.png"))
    assert [g.name for g in grids] == ["step0000002.png", "step0000004.png"]
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["global_step"] == 4
    ckpt = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4
    assert ckpt["diffusion_lab_config"]["backbone"]["_target_"] == cfg.backbone._target_
    # EMA weights are in the checkpoint and differ from the raw weights after training.
    ema_keys = [k for k in ckpt["state_dict"] if k.startswith("ema.model.")]
    assert ema_keys
    moved = [
        k for k in ema_keys
        if not torch.equal(ckpt["state_dict"][k], ckpt["state_dict"][k.replace("ema.model.", "backbone.", 1)])
    ]
    assert moved, "EMA weights never diverged from the online weights"


def run_script(script: str, *overrides: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *overrides],
        check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny conditional U-Net trained for a few steps by scripts/train.py itself."""
    out = tmp_path_factory.mktemp("outputs")
    res = run_script(
        "train.py", *BACKBONES["unet"], *FAST, f"paths.output_root={out}", "name=roundtrip",
        f"paths.cache_dir={out / 'cache'}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (run_dir,) = list((out / "roundtrip").iterdir())
    return run_dir


def test_train_writes_config_and_checkpoints(trained_run):
    assert (trained_run / ".hydra" / "config.yaml").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert (trained_run / "csv" / "metrics.csv").is_file()


def test_checkpoint_to_sample_roundtrip(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    common = [f"ckpt={ckpt}", f"paths.output_root={tmp_path}", "samples_per_class=3", "sampler.steps=4"]
    a = run_script("sample.py", *common, "sampler=ddim", "name=a")
    assert a.returncode == 0, a.stderr[-3000:]
    b = run_script("sample.py", *common, "sampler=ddim", "name=b", "batch_size=7")
    c = run_script("sample.py", *common, "sampler=ddim", "name=c", "guidance.scale=3")
    assert b.returncode == 0 and c.returncode == 0, (b.stderr[-2000:], c.stderr[-2000:])

    def load(name):
        (d,) = list((tmp_path / name).iterdir())
        assert (d / "samples.png").is_file()
        info = json.loads((d / "sample_info.json").read_text())
        return np.load(d / "samples.npz"), info

    (sa, ia), (sb, _), (sc, ic) = load("a"), load("b"), load("c")
    assert sa["x"].shape == (30, 1, 8, 8)
    assert list(sa["labels"]) == [c for c in range(10) for _ in range(3)]
    assert ia["nfe_per_sample"] == 4 and ia["guidance_scale"] == 1.0
    # Per-sample seeds: the batch size does not change any sample (up to the last-bit
    # differences of convolution kernels chosen per batch size).
    np.testing.assert_allclose(sa["x"], sb["x"], rtol=0, atol=1e-5)
    # Guidance changes the samples (and costs one batched call per step).
    assert not np.allclose(sa["x"], sc["x"])
    assert ic["guidance_scale"] == 3.0


def test_sample_rejects_bad_checkpoint(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint")
    res = run_script("sample.py", f"ckpt={bad}", f"paths.output_root={tmp_path}")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: checkpoint {bad} is unreadable")


class _RecordStart(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.step = trainer.global_step
        self.ema = {k: v.clone() for k, v in pl_module.ema.state_dict().items()}


def test_resume_continues_step_and_ema(make_cfg, tmp_path, monkeypatch):
    first = tmp_path / "first"
    cfg = make_cfg(*BACKBONES["unet"], *FAST, run_dir=first)
    train(cfg)
    ckpt_path = first / "checkpoints" / "step0000002.ckpt"
    saved = load_checkpoint_file(ckpt_path)

    cfg2 = make_cfg(*BACKBONES["unet"], *FAST, "trainer.max_steps=6", f"ckpt_path={ckpt_path}",
                    run_dir=tmp_path / "second")
    recorder = _RecordStart()
    import diffusion_lab.tasks.train as train_task

    original = train_task.build_callbacks
    monkeypatch.setattr(train_task, "build_callbacks", lambda c: [*original(c), recorder])
    metrics = train(cfg2)
    assert recorder.step == 2
    for k, v in recorder.ema.items():
        torch.testing.assert_close(v, saved["state_dict"][f"ema.{k}"], rtol=0, atol=0)
    assert int(recorder.ema["num_updates"]) == 2
    assert metrics["global_step"] == 6


def test_multirun_sweep_writes_one_directory_per_job(tmp_path):
    res = run_script(
        "train.py", "-m", "schedule=linear,cosine", *BACKBONES["unet"], *FAST, "logger=none",
        "trainer.max_steps=2", f"paths.output_root={tmp_path}", "name=sweep",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (sweep,) = list((tmp_path / "sweep" / "multirun").iterdir())
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    for j in jobs:
        assert json.loads((sweep / j / "metrics.json").read_text())["global_step"] == 2
        assert (sweep / j / "checkpoints" / "last.ckpt").is_file()
    targets = sorted((sweep / j / ".hydra" / "overrides.yaml").read_text() for j in jobs)
    assert "schedule=cosine" in targets[0] and "schedule=linear" in targets[1]
    # the sweep's summary, written by the multirun callback: one row per job, final metrics
    summary = json.loads((sweep / "summary.json").read_text())
    rows = [dict(zip(summary["columns"], r)) for r in summary["rows"]]
    assert [r["job"] for r in rows] == ["0", "1"]
    assert "schedule=linear" in rows[0]["overrides"] and "schedule=cosine" in rows[1]["overrides"]
    for r, j in zip(rows, jobs):
        final = json.loads((sweep / j / "metrics.json").read_text())
        assert r["global_step"] == 2 and r["train/loss"] == final["train/loss"]
    assert "| job | overrides |" in (sweep / "summary.md").read_text()


def test_sampling_sweep_from_one_checkpoint(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    res = run_script(
        "sample.py", "-m", f"ckpt={ckpt}", "sampler=ddim,dpmpp", "sampler.steps=2,3",
        "guidance.scale=1,3", "samples_per_class=3", f"paths.output_root={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}", "name=sweep",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (sweep,) = list((tmp_path / "sweep" / "multirun").iterdir())
    assert len(json.loads((sweep / "summary.json").read_text())["rows"]) == 8  # at sweep end
    (sweep / "summary.json").unlink()
    summarize = run_script("summarize_sweep.py", str(sweep))
    assert summarize.returncode == 0, summarize.stderr[-2000:]
    summary = json.loads((sweep / "summary.json").read_text())
    rows = [dict(zip(summary["columns"], r)) for r in summary["rows"]]
    assert len(rows) == 8
    assert {(r["sampler"], r["steps"], r["guidance_scale"]) for r in rows} == {
        (s, n, w) for s in ("ddim", "dpmpp_2m") for n in (2, 3) for w in (1.0, 3.0)
    }
    for r in rows:
        assert r["num_samples"] == 30 and np.isfinite(r["fid_classifier"])
        assert 0.0 <= r["sample_accuracy"] <= 1.0
        assert r["nfe_per_sample"] == r["steps"]
    assert (sweep / "fid_vs_nfe.png").is_file() and (sweep / "fid_vs_w.png").is_file()


def test_warmup_cosine_lr_factor_closed_form():
    import math

    from diffusion_lab.lit.module import warmup_cosine_lambda

    def f(s):
        return warmup_cosine_lambda(s, warmup_steps=10, total_steps=110, final_fraction=0.1)

    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5)  # linear warm-up
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # = 0.55
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)  # held after the end


def test_cosine_lr_decay_and_auto_precision_in_a_run(make_cfg, tmp_path):
    """module.lr_decay=cosine ends at lr_final_fraction x lr at trainer.max_steps (the LR the run
    logs); trainer.precision=auto is recorded as what it chose on this machine."""
    from diffusion_lab.reports.run_records import load_history
    from diffusion_lab.utils.hardware import auto_precision

    run_dir = tmp_path / "run"
    cfg = make_cfg("backbone=unet_small", *SMALL_UNET, *FAST, "module.lr_decay=cosine",
                   "module.lr_final_fraction=0.25", "module.optimizer.lr=0.002",
                   "trainer.precision=auto", run_dir=run_dir)
    train(cfg)
    lrs = [v for _, v in load_history(run_dir).get("lr-AdamW", [])]
    assert len(lrs) >= 3 and lrs[0] == pytest.approx(0.002)
    assert all(a >= b for a, b in itertools.pairwise(lrs)) and lrs[-1] < 0.002
    # step s of 4 (no warm-up): 0.25 + 0.75 (1 + cos(pi s / 4)) / 2; the last logged is s = 3
    assert lrs[-1] == pytest.approx(0.002 * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * 3 / 4))))
    ckpt = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["diffusion_lab_config"]["trainer"]["precision"] == auto_precision("cpu")
    assert auto_precision("cpu") in ("bf16-mixed", "32-true")
