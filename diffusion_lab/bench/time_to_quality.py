"""Time to quality: sample quality against wall-clock seconds of training, diffusion-lab's
default digits run against a diffusers training loop of the same size on the same data.

diffusion-lab side: the default training config (``conf/train.yaml``: digits, unet_small,
AdamW 1e-3 with warm-up, EMA, label dropout) through the Lightning Trainer the project trains
with, no logger, no checkpoints, no validation (the diffusers loop has none either). diffusers
side: ``bench/diffusers_loop.py``. Each side trains once; when its training time passes a
budget the EMA weights are snapshotted (the snapshot's own time is not counted). Afterwards
every snapshot samples ``samples_per_class`` images per class at 20 NFE, guidance scale 1 (one
evaluation per step), and the project's judge gives FID (classifier features, cached real
statistics) and classifier accuracy. diffusion-lab samples with its default sampler; each
diffusers snapshot is sampled with every configuration of
:data:`diffusion_lab.bench.diffusers_loop.SAMPLERS` (the same x_T seeds) and its best FID
counts, named in the row: diffusers gets its best sampler per budget, picked on the scored
samples themselves (a choice that can only flatter it).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from diffusion_lab.bench.readme import machine_description
from diffusion_lab.evaluation.judge import SampleJudge
from diffusion_lab.evaluation.samples import generate_samples, grid_labels
from diffusion_lab.presets import CONF_DIR
from diffusion_lab.tasks.build import build_datamodule, build_module


class BudgetSnapshots(L.Callback):
    """Copies the EMA weights each time the training time passes the next budget (seconds
    since the first batch, the callback's own time excluded); stops after the last one."""

    def __init__(self, budgets: list[float]) -> None:
        self.pending = sorted(budgets)
        self.snapshots: list[tuple[float, int, dict]] = []
        self.start: float | None = None
        self.paused = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        while self.pending and now - self.start - self.paused >= self.pending[0]:
            state = {k: v.detach().clone() for k, v in pl_module.ema.model.state_dict().items()}
            self.snapshots.append((self.pending.pop(0), trainer.global_step, state))
        if not self.pending:
            trainer.should_stop = True
        self.paused += time.perf_counter() - now


def default_config(overrides: list[str] = ()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def train_ours(cfg, budgets: list[float]):
    """The default run for ``max(budgets)`` seconds: (module, datamodule, snapshots)."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    module, dm = build_module(cfg), build_datamodule(cfg)
    snaps = BudgetSnapshots(budgets)
    t = cfg.trainer
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=-1, max_epochs=-1,
                        precision=t.precision, gradient_clip_val=t.gradient_clip_val,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[snaps])
    trainer.fit(module, datamodule=dm)
    return module, dm, snaps.snapshots


def train_theirs(dm, budgets: list[float], num_classes: int, seed: int = 0):
    """The diffusers loop for ``max(budgets)`` seconds: (net, scheduler, snapshots)."""
    from diffusion_lab.bench.diffusers_loop import (
        DiffusersLoop,
        cosine_total_steps,
        unet2d_like_unet_small,
    )

    x, y = dm.train_set.x, dm.train_set.y
    torch.manual_seed(seed)
    pace = DiffusersLoop(unet2d_like_unet_small(num_classes, x.shape[-1], x.shape[1]),
                         num_classes=num_classes)
    for _ in range(3):  # untimed warm-up
        pace.step(x[:128], y[:128])
    start = time.perf_counter()
    for _ in range(5):
        pace.step(x[:128], y[:128])
    per_step = (time.perf_counter() - start) / 5
    torch.manual_seed(seed)
    net = unet2d_like_unet_small(num_classes, x.shape[-1], x.shape[1])
    loop = DiffusersLoop(net, num_classes=num_classes, seed=seed,
                         total_steps=cosine_total_steps(max(budgets), per_step))
    snapshots: list = []
    loop.train(x, y, budgets, lambda s, k, state: snapshots.append((s, k, state)))
    return net, loop.scheduler, snapshots


def evaluate(judge: SampleJudge, labels: torch.Tensor, draw) -> dict:
    """FID and accuracy of ``draw(labels)``, and the seconds sampling took."""
    start = time.perf_counter()
    x = draw(labels)
    seconds = time.perf_counter() - start
    return {"fid": round(judge.fid(x), 3), "accuracy": round(judge.accuracy(x, labels), 4),
            "sample_seconds": round(seconds, 1)}


def _our_sampler(cfg) -> str:
    """The default sampler's name: its solver and grid, e.g. ``dpmpp_2m, LogSNRSpacing``."""
    solver = str(cfg.sampler.solver._target_).rsplit(".", 1)[-1]
    grid = str(OmegaConf.select(cfg, "sampler.spacing._target_", default="") or "").rsplit(".", 1)[-1]
    return f"{solver}, {grid}" if grid else solver


def seconds_to_reach(rows: list[dict], fid: float) -> float | None:
    """The first budget at which a side's FID is at or below ``fid`` (None: not reached)."""
    hits = [r["seconds"] for r in rows if r["fid"] <= fid]
    return min(hits) if hits else None


def time_to_quality(budgets: list[float], samples_per_class: int = 100, seed: int = 12345,
                    cache_dir: str | Path = ".cache", overrides: list[str] = (),
                    progress=print) -> dict:
    cfg = default_config([*overrides, "logger=none", "callbacks=none",
                          f"paths.run_dir={Path(cache_dir).resolve() / 'time_to_quality'}"])
    progress(f"diffusion-lab: training the default digits model for {max(budgets)} s")
    module, dm, ours = train_ours(cfg, budgets)
    progress(f"diffusers: training the matched UNet2DModel loop for {max(budgets)} s")
    net, ddpm, theirs = train_theirs(dm, budgets, module.num_classes, int(cfg.seed))
    judge = SampleJudge.for_data(dm, cache_dir, cfg.data.name)
    labels = grid_labels(module.num_classes, samples_per_class)
    from diffusion_lab.bench.diffusers_loop import SAMPLERS as samplers
    from diffusion_lab.bench.diffusers_loop import sample as diffusers_sample

    rows = {"diffusion-lab": [], "diffusers": []}
    our_sampler = _our_sampler(cfg)
    for seconds, steps, state in ours:
        module.ema.model.load_state_dict(state)
        r = evaluate(judge, labels, lambda lab: generate_samples(
            module, lab, len(lab), seed=seed, guidance_scale=1.0, distributed=False))
        rows["diffusion-lab"].append({"seconds": seconds, "steps": steps, **r,
                                      "sampler": our_sampler})
        progress(f"diffusion-lab {seconds:g} s: {rows['diffusion-lab'][-1]}")
    ema_net = copy.deepcopy(net)
    for seconds, steps, state in theirs:
        ema_net.load_state_dict(state, strict=False)
        tried = {}
        for name, cls, options in samplers:
            try:
                tried[name] = evaluate(judge, labels, lambda lab, c=cls, o=options: diffusers_sample(
                    ema_net, ddpm, lab, tuple(module.sample_shape), steps=20, seed=seed,
                    scheduler=c, options=o))
            except (IndexError, ValueError) as e:  # a configuration diffusers cannot run here
                progress(f"diffusers {seconds:g} s, {name}: skipped ({type(e).__name__}: {e})")
        best = min(tried, key=lambda k: tried[k]["fid"])
        rows["diffusers"].append({"seconds": seconds, "steps": steps, **tried[best],
                                  "sampler": best,
                                  "fid_by_sampler": {k: v["fid"] for k, v in tried.items()}})
        progress(f"diffusers {seconds:g} s: {rows['diffusers'][-1]}")
    target = rows["diffusers"][-1]["fid"]  # the diffusers loop's FID at the largest budget
    a, b = seconds_to_reach(rows["diffusion-lab"], target), seconds_to_reach(rows["diffusers"], target)
    return {"budgets": sorted(budgets), "samples": len(labels), "seed": seed,
            "machine": machine_description(torch.device("cpu")),
            "sampler": ("20 NFE, guidance scale 1; diffusion-lab: its default sampler; "
                        f"diffusers: the best FID of {len(samplers)} scheduler configurations"),
            "params_ours": module.num_parameters(),
            "params_diffusers": sum(p.numel() for p in net.parameters()),
            "rows": rows, "reference": judge.reference(), "target_fid": target,
            "seconds_ours": a, "seconds_diffusers": b,
            "speedup": None if not a or not b else round(b / a, 2)}
