"""Progress bars on the long loops outside the trainer: sampling and feature extraction."""

from __future__ import annotations

import torch
from conftest import compose_config

from diffusion_lab.lit.generate import generate
from diffusion_lab.metrics.fid import extract_features
from diffusion_lab.tasks.build import build_module


def test_sampling_bar_counts_every_sampler_step_of_every_batch(tmp_path, capsys):
    cfg = compose_config("train", ["backbone.base_channels=16", "backbone.groups=8",
                                   "backbone.num_heads=2", "sampler.steps=3"], tmp_path / "run")
    module = build_module(cfg)
    x = generate(module, module.sampler, labels=torch.arange(10), num_samples=10, seed=0,
                 batch_size=4, guidance_scale=1.0, use_ema=True, progress="sampling")
    err = capsys.readouterr().err
    assert x.shape == (10, 1, 8, 8)
    assert "sampling" in err and "9/9" in err  # 3 batches x 3 steps
    generate(module, module.sampler, labels=torch.arange(2), num_samples=2, seed=0,
             batch_size=4, guidance_scale=1.0, use_ema=True)  # no description: no bar
    assert capsys.readouterr().err == ""


def test_feature_bar_counts_images_and_can_be_switched_off(capsys, monkeypatch):
    net = torch.nn.Flatten()
    feats = extract_features(net, torch.zeros(70, 1, 2, 2), batch_size=32, progress="features")
    assert feats.shape == (70, 4)
    assert "70/70" in capsys.readouterr().err
    monkeypatch.setenv("DIFFUSION_LAB_PROGRESS", "0")
    extract_features(net, torch.zeros(70, 1, 2, 2), batch_size=32, progress="features")
    assert capsys.readouterr().err == ""


def test_without_a_terminal_the_bar_writes_a_line_per_tenth_and_one_a_minute(capsys, monkeypatch):
    """In a log (stderr not a terminal) a live bar prints nothing until the loop ends: plain
    lines instead, at every tenth of the work and after a minute without one, with time left."""
    from diffusion_lab.utils import progress

    now = [0.0]
    monkeypatch.setattr(progress, "_clock", lambda: now[0])
    with progress.progress_bar("fitting", 100) as advance:
        for _ in range(25):  # 2 s each: 20% in 50 s, no minute without a line
            now[0] += 2.0
            advance()
        now[0] += 61.0  # a slow item: a line although no new tenth is reached
        advance()
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["fitting: 10/100 (10%), 0:20 elapsed, ~3:00 left",
                         "fitting: 20/100 (20%), 0:40 elapsed, ~2:40 left"]
    assert lines[2] == "fitting: 26/100 (26%), 1:51 elapsed, ~5:16 left"  # 111 s * 74 / 26
    assert len(lines) == 3  # closed right after a line: no repeat of it

    with progress.progress_bar("sampling", 7) as advance:  # the last line says it is done
        for _ in range(7):
            advance()
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("sampling: 7/7 (100%)") and "left" not in lines[-1]
    assert len(lines) == 7  # 7 items: each crosses a tenth, none is written twice


def test_training_in_a_log_writes_step_lines_with_the_loss(tmp_path, capsys, monkeypatch):
    """Trained with stderr going to a file, the callbacks group's progress bar is the line bar:
    lines at each tenth of max_steps with the loss, the last at the final step; counted from the
    resumed step when training continues."""
    import lightning.pytorch as pl
    from lightning.pytorch.demos.boring_classes import BoringModel

    from diffusion_lab.callbacks.progress_bar import LogLinesProgressBar, progress_bar
    from diffusion_lab.tasks.build import build_callbacks

    cfg = compose_config("train", [], tmp_path / "run")
    bars = [c for c in build_callbacks(cfg) if isinstance(c, pl.callbacks.ProgressBar)]
    assert len(bars) == 1 and isinstance(bars[0], LogLinesProgressBar)  # pytest: not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(progress_bar(), pl.callbacks.RichProgressBar)
    monkeypatch.undo()

    class Logged(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log("train/loss", out["loss"], prog_bar=True)
            return out

    def fit(steps, ckpt=None):
        trainer = pl.Trainer(max_steps=steps, callbacks=[LogLinesProgressBar()], logger=False,
                             enable_checkpointing=False, enable_model_summary=False,
                             limit_val_batches=0, default_root_dir=tmp_path)
        trainer.fit(Logged(), ckpt_path=ckpt)
        return trainer

    trainer = fit(20)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("training step")]
    steps = [ln.split(",")[0].split(": ")[1] for ln in lines]
    assert steps == [f"{k}/20 ({5 * k}%)" for k in range(2, 21, 2)]  # one line per tenth
    assert all("train/loss" in ln for ln in lines) and "left" in lines[0]
    trainer.save_checkpoint(tmp_path / "at20.ckpt")
    fit(30, tmp_path / "at20.ckpt")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("training step")]
    assert lines[0].startswith("training step: 21/30") and lines[-1].startswith(
        "training step: 30/30 (100%)")
