"""Summaries of sampling sweeps: one row per job, FID-vs-NFE and FID-vs-w views.

    python scripts/sample.py -m ckpt=... sampler=ddim,dpmpp sampler.steps=10,20,50 guidance.scale=1,3,5
    python scripts/summarize_sweep.py outputs/sample/multirun/<date>_<time>
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from diffusion_lab.utils.images import save_png
from diffusion_lab.utils.plots import line_plot_png

COLUMNS = ["job", "sampler", "spacing", "steps", "nfe_per_sample", "guidance_scale",
           "num_samples", "sample_accuracy", "fid_classifier", "seconds"]


def load_jobs(sweep_dir: str | Path) -> list[dict]:
    """Every job's sample_info.json under ``sweep_dir``, with the job's folder name."""
    rows = []
    for info in sorted(Path(sweep_dir).rglob("sample_info.json")):
        row = json.loads(info.read_text())
        row["job"] = info.parent.name
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no sample_info.json under {sweep_dir}: not a sampling sweep")
    return rows


def _series(rows, x_key: str, group_keys: tuple[str, ...], y_key: str):
    """{label: [(x, y), ...]} grouping rows by ``group_keys``, sorted by x."""
    groups = defaultdict(list)
    for r in rows:
        if r.get(y_key) is None:
            continue
        label = ", ".join(f"{k}={r.get(k)}" for k in group_keys)
        groups[label].append((r[x_key], r[y_key]))
    return {k: sorted(v) for k, v in groups.items()}


def _plot(series, xlabel, ylabel, title, path) -> Path | None:
    if not series:
        return None
    xs = sorted({x for pts in series.values() for x, _ in pts})
    ys = {k: [dict(pts).get(x, float("nan")) for x in xs] for k, pts in series.items()}
    return save_png(line_plot_png(xs, ys, xlabel=xlabel, ylabel=ylabel, title=title), path)


def summarize(sweep_dir: str | Path) -> dict:
    """Write summary.json, summary.md and the two plots into ``sweep_dir``; return the table."""
    sweep_dir = Path(sweep_dir)
    rows = load_jobs(sweep_dir)
    n = rows[0].get("num_samples")
    table = [[r.get(c) for c in COLUMNS] for r in rows]
    (sweep_dir / "summary.json").write_text(json.dumps({"columns": COLUMNS, "rows": table}, indent=1))
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
           for row in table]
    (sweep_dir / "summary.md").write_text("\n".join(md) + "\n")
    plots = {
        "fid_vs_nfe": _plot(_series(rows, "nfe_per_sample", ("sampler", "guidance_scale"), "fid_classifier"),
                            "NFE per sample", "FID (classifier features)",
                            f"FID vs NFE ({n} samples)", sweep_dir / "fid_vs_nfe.png"),
        "fid_vs_w": _plot(_series(rows, "guidance_scale", ("sampler", "steps"), "fid_classifier"),
                          "guidance scale w", "FID (classifier features)",
                          f"FID vs w ({n} samples)", sweep_dir / "fid_vs_w.png"),
    }
    return {"columns": COLUMNS, "rows": table, "markdown": "\n".join(md), "plots": plots}
