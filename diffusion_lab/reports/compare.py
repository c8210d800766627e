"""Compare finished runs in one self-contained HTML file (no server, no network).

``write_report(paths, out)`` finds the run directories (with ``.hydra/config.yaml``) under
``paths``, reads each run's own records (``run_records``: the same files whatever logger the
run used) and writes one HTML page, every figure a base64 PNG. Folders of runs that never
trained (refused at validation: Hydra had already made the folder) are not runs; the page
names them in one line.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_lab.loggers.run_record import SCALARS_FILE
from diffusion_lab.reports.run_discovery import (
    CompareError,
    discover_runs,
    run_labels,
    split_trained,
)
from diffusion_lab.reports.run_records import (
    History,
    eval_points,
    final_grid,
    load_config,
    load_history,
    read_guidance_sweep,
    read_metrics,
    run_logger,
)

MISSING = "\u2014"  # shown where a run lacks a config key or metric
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    path: Path
    label: str
    color: str
    config: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    history: History = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    sweep: dict | None = None
    grid: tuple[Path, str] | None = None
    logger: str = "none"
    notes: list[str] = field(default_factory=list)


def load_runs(paths: list[Path]) -> list[Run]:
    """Everything the report shows, per run; one tab10 (tab20 beyond 10 runs) colour each."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap, runs = colormaps["tab10" if len(paths) <= 10 else "tab20"], []
    colors = [to_hex(cmap(i % cmap.N)) for i in range(len(paths))]
    for path, label, color in zip(paths, run_labels(paths), colors):
        run = Run(path=path, label=label, color=color)
        run.config, run.overrides = load_config(path, run.notes)
        run.history = load_history(path, run.notes)
        run.logger = run_logger(run.config)
        run.metrics = read_metrics(path, run.notes)
        run.sweep = read_guidance_sweep(path, run.notes)
        run.grid = final_grid(path)
        runs.append(run)
    return runs


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) and value else json.dumps(value)


def config_diff(runs: list[Run]) -> list[tuple[str, list[str]]]:
    """(dotted key, value per run) for every key whose value is not the same in all runs."""
    keys = dict.fromkeys(k for run in runs for k in run.config)
    rows = [(k, [_fmt(r.config[k]) if k in r.config else MISSING for r in runs]) for k in keys]
    return [(key, values) for key, values in rows if len(set(values)) > 1]


def _png_uri(data: bytes) -> str:
    if not data.startswith(_PNG_MAGIC):  # any other image format: re-encode as PNG
        from PIL import Image

        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _new_figure(titles: list[str], xlabel: str, ylabels: list[str]):
    from matplotlib.figure import Figure  # no pyplot: no global backend, no display

    fig = Figure(figsize=(5.5 * len(titles), 4))
    axes = fig.subplots(1, len(titles), squeeze=False)[0]
    for ax, title, ylabel in zip(axes, titles, ylabels):
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
    return fig, axes


def _finish(fig, axes, runs: list[Run], log_y: bool = False) -> str:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=r.color, lw=2, label=r.label) for r in runs]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(runs), 3),
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    for ax in axes:
        if log_y and ax.lines and all(y > 0 for line in ax.lines for y in line.get_ydata()):
            ax.set_yscale("log")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return _png_uri(buf.getvalue())


def loss_figure(runs: list[Run]) -> str | None:
    """train/loss and val/loss against the step, one colour per run."""
    keys = ["train/loss", "val/loss"]
    if not any(k in run.history for run in runs for k in keys):
        return None
    fig, axes = _new_figure(keys, "step", ["loss", "loss"])
    for run in runs:
        for ax, key in zip(axes, keys):
            points = run.history.get(key, [])
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=run.color, lw=1.2,
                        marker="o" if len(points) < 30 else None, ms=3)
    return _finish(fig, axes, runs, log_y=True)


def guidance_figure(runs: list[Run]) -> str | None:
    """FID and accuracy against the guidance scale w: sweep lines, end-of-run eval stars."""
    panels = [("fid", "fid_classifier"), ("accuracy", "sample_accuracy")]
    if not any(r.sweep or eval_points(r.metrics, m) for r in runs for _, m in panels):
        return None
    fig, axes = _new_figure(["FID vs w", "accuracy vs w"], "guidance scale w",
                            ["FID (classifier features)", "sample accuracy"])
    for run in runs:
        for ax, (column, metric) in zip(axes, panels):
            if run.sweep:
                pts = [(w, v) for w, v in zip(run.sweep["w"], run.sweep[column])
                       if w is not None and v is not None]
                if pts:
                    ax.plot(*zip(*pts), color=run.color, marker="o", ms=4, lw=1.5)
            evals = eval_points(run.metrics, metric)
            if evals:
                ax.plot(list(evals), list(evals.values()), ls="none", marker="*", ms=12,
                        color=run.color, markeredgecolor="black", markeredgewidth=0.5)
    return _finish(fig, axes, runs)


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;max-width:100%}th{background:#eee}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}.num{font-family:monospace}code{font-size:.9em}.nw{white-space:nowrap}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;
vertical-align:middle}.grids{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;text-align:
center}figure img{width:300px;height:300px;object-fit:contain;image-rendering:pixelated;border:
1px solid #ccc}img.plot{max-width:100%}.note{color:#8a5a00}"""


def _e(text) -> str:
    return html.escape(str(text))


def _head(run: Run) -> str:
    return f'<span class="nw"><span class="sw" style="background:{run.color}"></span>{_e(run.label)}</span>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    """``header`` and ``rows`` are HTML already (escape cell text before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _codes(items) -> str:
    return " ".join(f"<code>{_e(o)}</code>" for o in items) or MISSING


def _runs_section(runs: list[Run]) -> str:
    """One row per run: its own Hydra overrides; the overrides all runs share listed once."""
    shared = [o for o in runs[0].overrides if len(runs) > 1 and all(o in r.overrides for r in runs)]
    rows = [[_head(r), f"<code>{_e(r.path)}</code>", f'<span class="nw">{_e(r.logger)}</span>',
             _codes(o for o in r.overrides if o not in shared)] for r in runs]
    out = _table(["run", "directory", "logger", "Hydra overrides (own)"], rows)
    out += f"<p>Overrides shared by all runs: {_codes(shared)}</p>" if shared else ""
    notes = [f"<li><b>{_e(r.label)}</b>: {_e(n)}</li>" for r in runs for n in r.notes]
    return out + (f'<ul class="note">{"".join(notes)}</ul>' if notes else "")


def _figure_section(title: str, uri: str | None, missing: str, caption: str = "") -> str:
    if uri is None:
        return f'<h2>{_e(title)}</h2><p class="note">{_e(missing)}</p>'
    return f'<h2>{_e(title)}</h2><p>{_e(caption)}</p><img class="plot" src="{uri}" alt="{_e(title)}">'


def _grids_section(runs: list[Run]) -> str:
    cards = []
    for run in runs:
        image, caption = run.grid or (None, "no sample grid")
        img = f'<img src="{_png_uri(image.read_bytes())}" alt="{_e(run.label)}">' if image else ""
        cards.append(f"<figure>{img}<figcaption>{_head(run)}<br><small>{_e(caption)}</small>"
                     "</figcaption></figure>")
    return f'<h2>Final samples</h2><div class="grids">{"".join(cards)}</div>'


def _values_table(runs: list[Run], rows: list[tuple[str, list[str]]], empty: str) -> str:
    if not rows:
        return f'<p class="note">{_e(empty)}</p>'
    cells = [[f'<code class="nw">{_e(k)}</code>', *(f'<span class="num">{_e(v)}</span>' for v in vals)]
             for k, vals in rows]
    return _table(["key", *(_head(r) for r in runs)], cells)


def _metrics_rows(runs: list[Run]) -> list[tuple[str, list[str]]]:
    keys = list(dict.fromkeys(k for run in runs for k in run.metrics))
    return [(k, [_fmt(r.metrics[k]) if k in r.metrics else MISSING for r in runs]) for k in keys]


def _sweep_caption(run: Run) -> str:
    """'label: step 4, 200 samples per w, dpmpp_2m NFE 3' from the sweep table's columns."""
    first = {k: next((v for v in run.sweep[k] if v is not None), None)
             for k in ("num_samples", "sampler", "nfe")}
    extra = [f"{first['num_samples']:g} samples per w" if first["num_samples"] else "",
             f"{first['sampler'] or ''} NFE {first['nfe']:g}".strip() if first["nfe"] else ""]
    return ", ".join([f"{run.label}: step {run.sweep['step']}", *filter(None, extra)])


def _never_trained_note(skipped: list[Path]) -> str:
    if not skipped:
        return ""
    names = ", ".join(str(p) for p in skipped)
    return (f'<p class="note">{len(skipped)} folder(s) left out: runs that never trained '
            f"(no scalars, metrics or checkpoint: refused at validation or stopped before step "
            f"0): {_e(names)}</p>")


def render_html(runs: list[Run], never_trained: list[Path] = ()) -> str:
    """The whole report; every image is an inline data URI, no external resource."""
    sweep_steps = "; ".join(_sweep_caption(r) for r in runs if r.sweep)
    parts = [
        f"<h1>diffusion-lab: {len(runs)} runs compared</h1>",
        f"<p>written {datetime.datetime.now():%Y-%m-%d %H:%M}</p>",
        "<h2>Runs</h2>", _runs_section(runs), _never_trained_note(list(never_trained)),
        _figure_section("Loss curves", loss_figure(runs),
                        "no train/loss or val/loss in any run's records",
                        f"From each run's own record ({SCALARS_FILE}), whatever its logger."),
        _figure_section("Guidance: FID and accuracy vs w", guidance_figure(runs),
                        "no guidance sweep tables (media/guidance_sweep_step*.json) and no "
                        "evaluation metrics (metrics.json) in any run",
                        "Lines: latest guidance sweep table per run"
                        + (f" ({sweep_steps})" if sweep_steps else "")
                        + "; stars: end-of-run evaluation in metrics.json."),
        _grids_section(runs),
        ("<h2>Config values that differ</h2><p>From <code>.hydra/config.yaml</code>, "
         "interpolations as written; keys equal in every run are left out.</p>"),
        _values_table(runs, config_diff(runs), "all runs have the same config"),
        "<h2>Final metrics (metrics.json)</h2>",
        _values_table(runs, _metrics_rows(runs), "no run has a metrics.json"),
    ]
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>diffusion-lab run '
            f"comparison</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def write_report(paths, out: Path) -> Path:
    """Discover the runs under ``paths`` and write the comparison to ``out``; returns ``out``.
    Runs that never trained are left out (and named); none trained at all is a CompareError."""
    trained, never = split_trained(discover_runs(paths))
    if not trained:
        raise CompareError(f"no trained runs under {', '.join(str(p) for p in paths)}: the "
                           f"{len(never)} run folder(s) there never trained (refused at "
                           "validation or stopped before step 0)")
    runs = load_runs(trained)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(runs, never), encoding="utf-8")
    return out
