"""What every recipe does: train a variant of the run config into a sub-folder, reload its
checkpoint, judge samples with the data classifier, plot loss curves, save grids."""

from __future__ import annotations

import copy
import math
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
        'run_dir'}."""
        cfg = self.variant(name, **overrides)
        metrics = train(cfg)
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
