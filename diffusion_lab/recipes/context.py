"""What every recipe does: train a variant of the run config (once for all recipes that need the
same one), reload its checkpoint, judge samples with the data classifier, plot loss curves,
save grids."""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import math
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.evaluation import SampleJudge
from diffusion_lab.recipes.report import RecipeReport
from diffusion_lab.reports.run_records import load_history
from diffusion_lab.tasks.build import build_datamodule, module_from_checkpoint
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.train import train
from diffusion_lab.utils.images import save_grid, save_png
from diffusion_lab.utils.plots import line_plot_png


class RecipeContext:
    """``cfg`` is the recipe's full run config (an ``experiment=recipe_*`` preset), ``out_dir``
    its output folder; ``report`` the report being written there."""

    def __init__(self, cfg: DictConfig, out_dir: str | Path, report: RecipeReport) -> None:
        self.cfg, self.out_dir, self.report = cfg, Path(out_dir), report
        self._judges: dict[str, SampleJudge] = {}

    def variant(self, name: str, **overrides) -> DictConfig:
        """The run config with ``overrides`` ({'schedule': {...}, 'backbone.x': 1}) writing to
        ``out_dir/name``."""
        cfg = copy.deepcopy(self.cfg)
        with open_dict(cfg):
            for key, value in overrides.items():
                OmegaConf.update(cfg, key, value, merge=False)
            cfg.paths.run_dir = str(self.out_dir / name)
            cfg.paths.checkpoint_dir = str(self.out_dir / name / "checkpoints")
            cfg.pop("recipe", None)
        return cfg

    def train(self, name: str, **overrides) -> dict:
        """Train the variant; returns {'metrics', 'module' (EMA weights, eval mode), 'datamodule',
        'run_dir', 'cfg'}.

        Recipes share trainings: a variant is trained once into
        ``<paths.output_root>/recipe_runs/<key>/``, ``key`` a hash of everything in its config
        but the paths and names, and every later recipe (or rerun) that needs the same variant
        reuses it; ``out_dir/name`` links to that folder. A training stopped before its end
        (``metrics.json`` not written) resumes from its newest checkpoint. ``recipe.share=false``
        trains into ``out_dir/name`` instead."""
        cfg = self.variant(name, **overrides)
        if not (self.cfg.get("recipe") or {}).get("share", True):
            metrics = train(cfg)
            self.report.note_training(name, cfg.paths.run_dir, metrics, reused=False)
            return self._load(cfg, metrics)
        key = training_key(cfg)
        shared = Path(self.cfg.paths.output_root) / "recipe_runs" / key
        shared.mkdir(parents=True, exist_ok=True)
        with open(shared.parent / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two recipes launched together train it once
            with open_dict(cfg):
                cfg.paths.run_dir = str(shared)
                cfg.paths.checkpoint_dir = str(shared / "checkpoints")
            done = shared / "metrics.json"
            reused = done.is_file()
            if reused:
                metrics = json.loads(done.read_text())
                print(f"recipe: reusing the trained {name!r} model in {shared}")
            else:
                (shared / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
                if list((shared / "checkpoints").glob("*.ckpt")):
                    with open_dict(cfg):
                        cfg.ckpt_path = str(shared)
                metrics = train(cfg)
        link = self.out_dir / name
        if not link.exists():
            os.symlink(os.path.relpath(shared, self.out_dir), link)
        self.report.note_training(name, shared, metrics, reused)
        return self._load(cfg, metrics)

    @staticmethod
    def _load(cfg: DictConfig, metrics: dict) -> dict:
        ckpt_path = metrics["checkpoint"]
        module = module_from_checkpoint(load_checkpoint_file(ckpt_path), path=ckpt_path)
        return {"metrics": metrics, "module": module, "datamodule": build_datamodule(cfg),
                "run_dir": Path(cfg.paths.run_dir), "cfg": cfg}

    def judge(self, datamodule, name: str | None = None) -> SampleJudge:
        """The data classifier's judge (trained once per dataset, cached in paths.cache_dir)."""
        name = name or self.cfg.data.name
        if name not in self._judges:
            self._judges[name] = SampleJudge.for_data(datamodule, self.cfg.paths.cache_dir, name)
        return self._judges[name]

    def grid(self, x: torch.Tensor, filename: str, nrow: int) -> Path:
        return save_grid(x, self.out_dir / filename, nrow=nrow, upscale=max(1, 32 // x.shape[-1]))

    def loss_curves(self, runs: dict[str, Path], filename: str = "loss.png",
                    bins: int = 40) -> tuple[Path | None, dict[str, float]]:
        """Training loss of each run (mean per bin of steps) on one chart; also the final loss
        (mean of the last bin) of each."""
        histories = {label: load_history(run).get("train/loss", []) for label, run in runs.items()}
        last = max((h[-1][0] for h in histories.values() if h), default=0)
        if last == 0:
            return None, {}
        bins = max(1, min(bins, min(len(h) for h in histories.values() if h)))
        edges = torch.linspace(0, last + 1, bins + 1)
        xs, series, final = [], {}, {}
        for label, h in histories.items():
            steps = torch.tensor([s for s, _ in h], dtype=torch.float64)
            values = torch.tensor([v for _, v in h], dtype=torch.float64)
            which = torch.bucketize(steps, edges[1:-1].double(), right=True)
            means = [float(values[which == b].mean()) if bool((which == b).any()) else float("nan")
                     for b in range(bins)]
            series[label] = means
            final[label] = next((m for m in reversed(means) if not math.isnan(m)), float("nan"))
        xs = [float(e) for e in (edges[:-1] + edges[1:]) / 2]
        image = line_plot_png(xs, series, "training step", "training loss (bin mean)",
                              "training loss")
        return save_png(image, self.out_dir / filename), final


def training_key(cfg: DictConfig) -> str:
    """What identifies a training: a hash of its resolved config without the paths, run names
    and the recipe node (the run folder itself is replaced by a placeholder wherever the config
    refers to it)."""
    probe = copy.deepcopy(cfg)
    with open_dict(probe):
        probe.paths.run_dir = "<run>"
        probe.paths.checkpoint_dir = "<run>/checkpoints"
    data = OmegaConf.to_container(probe, resolve=True)
    for drop in ("paths", "name", "recipe", "hydra", "tags", "ckpt_path", "resume"):
        data.pop(drop, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
