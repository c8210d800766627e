"""A summary of every multirun, written when the sweep ends (a Hydra callback).

``python scripts/train.py -m ...`` and ``python scripts/sample.py -m ...`` get, in the sweep
directory, ``summary.md`` and ``summary.json``: one row per job with its overrides and final
metrics (training sweeps), or sampler, NFE, guidance scale, accuracy and FID (sampling sweeps,
which also get FID-vs-NFE and FID-vs-w plots: ``sweep_summary``). The table is printed too.
A job that failed or did not write its metrics shows as such; summarising never fails a sweep.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.reports.run_records import has_records

log = logging.getLogger(__name__)

# metrics.json keys worth a column, in this order, when any job has them
TRAIN_COLUMNS = ["global_step", "train/loss", "val/loss", "sample_accuracy", "fid_classifier",
                 "sample_count", "train_seconds"]


def _overrides(job_dir: Path) -> str:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    return " ".join(str(o) for o in OmegaConf.load(path))


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()]
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _no_metrics(job_dir: Path) -> str:
    """Why a job has no metrics.json, from its own records."""
    if has_records(job_dir):
        return "no metrics.json: failed or still running"
    return "never trained: refused at validation or stopped before step 0"


def summarize_training_sweep(sweep_dir: str | Path) -> dict[str, Any]:
    """Write summary.json and summary.md (one row per job) into ``sweep_dir``; return them."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for job_dir in _job_dirs(sweep_dir):
        metrics_file = job_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
        jobs.append((job_dir.name, _overrides(job_dir), metrics))
    columns = [c for c in TRAIN_COLUMNS if any(m and c in m for _, _, m in jobs)]
    header = ["job", "overrides", *columns]
    rows = [[name, ov, *(m.get(c) for c in columns)] if m is not None
            else [name, f"{ov} ({_no_metrics(sweep_dir / name)})", *[None] * len(columns)]
            for name, ov, m in jobs]
    (sweep_dir / "summary.json").write_text(json.dumps({"columns": header, "rows": rows}, indent=1))

    def fmt(v) -> str:
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    (sweep_dir / "summary.md").write_text("\n".join(md) + "\n")
    return {"columns": header, "rows": rows, "markdown": "\n".join(md)}


def summarize_any_sweep(sweep_dir: str | Path) -> dict[str, Any]:
    """A sampling sweep's summary when its jobs wrote sample_info.json, else a training one."""
    sweep_dir = Path(sweep_dir)
    if any(sweep_dir.glob("*/sample_info.json")):
        from diffusion_lab.reports.sweep_summary import summarize

        return summarize(sweep_dir)
    return summarize_training_sweep(sweep_dir)


class MultirunSummary(Callback):
    """Hydra callback: ``summary.md``/``summary.json`` in the sweep directory at the end."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        try:
            result = summarize_any_sweep(sweep_dir)
        except Exception as e:  # noqa: BLE001 -- a summary must never turn a finished sweep into a failure
            log.warning("could not summarise the sweep in %s: %s", sweep_dir, e)
            return
        log.info("sweep summary (%s):\n%s", sweep_dir / "summary.md", result["markdown"])
