"""Figures rendered to uint8 RGB arrays (H, W, 3), for the loggers and the run directory.

Matplotlib is used through its object-oriented API (``matplotlib.figure.Figure`` with the Agg
canvas), never through ``pyplot``: no global figure state, no backend switch in the caller's
process, safe in notebooks and in threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


def _figure(figsize: tuple[float, float], ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _figure_to_array(fig) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def scatter_png(points: np.ndarray, title: str = "", labels: np.ndarray | None = None,
                limits: tuple[float, float] | None = None) -> np.ndarray:
    """Scatter plot of 2-D points (coloured by class when ``labels`` are given) as an RGB array."""
    return scatter_row_png([points], [title], labels=labels, limits=limits)


def scatter_row_png(
    point_sets: Sequence[np.ndarray],
    titles: Sequence[str],
    suptitle: str = "",
    labels: np.ndarray | None = None,
    limits: tuple[float, float] | None = None,
) -> np.ndarray:
    """One row of 2-D scatter plots sharing the axes (see ``plots2d.scatter_row_figure``: points
    outside the axes are drawn on the border and counted, never dropped)."""
    from diffusion_lab.utils.plots2d import scatter_row_figure

    return _figure_to_array(scatter_row_figure(point_sets, titles, suptitle, labels, limits))


def line_plot_png(
    xs, series: dict[str, list[float]], xlabel: str, ylabel: str, title: str = "",
    marker: str | None = "o", log_x: bool = False,
) -> np.ndarray:
    """One or more curves over a shared x axis as an RGB array (``marker=None``: plain lines,
    for dense curves; ``log_x``: a logarithmic x axis, zeros left out)."""
    fig, (ax,) = _figure((5, 3.5))
    for label, ys in series.items():
        pairs = [(x, v) for x, v in zip(xs, ys, strict=True) if not log_x or x > 0]
        ax.plot([p[0] for p in pairs], [p[1] for p in pairs], marker=marker, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _figure_to_array(fig)


def bar_plot_png(
    labels: Sequence[str],
    values: Sequence[float],
    xlabel: str,
    ylabel: str,
    title: str = "",
    reference: Sequence[float] | None = None,
    reference_label: str = "reference",
) -> np.ndarray:
    """Bars (one per label), optionally with a reference level per bar drawn as a step line."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels but {len(values)} values")
    fig, (ax,) = _figure((max(4.0, 0.45 * len(labels) + 1.5), 3.5))
    pos = np.arange(len(labels))
    ax.bar(pos, np.nan_to_num(np.asarray(values, dtype=float)), color="tab:blue", width=0.8)
    if reference is not None:
        ax.step(np.r_[pos - 0.5, pos[-1] + 0.5], np.r_[reference, reference[-1]], where="post",
                color="tab:orange", label=reference_label)
        ax.legend(fontsize=8)
    ax.set_xticks(pos, list(labels), rotation=45 if max(map(len, labels)) > 3 else 0,
                  fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return _figure_to_array(fig)


def heatmap_png(matrix, row_labels: Sequence[str], col_labels: Sequence[str], xlabel: str,
                ylabel: str, title: str = "", fmt: str = "{:.2f}") -> np.ndarray:
    """A matrix as coloured cells (0 white, 1 dark), each cell's value written in it."""
    m = np.asarray(matrix, dtype=float)
    if m.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix {m.shape} for {len(row_labels)} x {len(col_labels)} labels")
    size = 0.42 * max(m.shape) + 1.8
    fig, (ax,) = _figure((size + 0.8, size))
    image = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=max(1.0, float(np.nanmax(m))))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for (i, j), v in np.ndenumerate(m):
        if v > 0:
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6,
                    color="white" if v > 0.5 * max(1.0, float(np.nanmax(m))) else "black")
    ax.set_xticks(range(len(col_labels)), list(col_labels), fontsize=8)
    ax.set_yticks(range(len(row_labels)), list(row_labels), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _figure_to_array(fig)


def header_height(labels: Sequence[str]) -> int:
    """Height in pixels of the label band :func:`label_columns` adds (0 without labels)."""
    return 12 if labels else 0


def label_columns(grid: np.ndarray, labels: Sequence[str], cell: int, padding: int = 1) -> np.ndarray:
    """Add a white band of :func:`header_height` pixels above a ``make_grid`` image, with
    ``labels[k]`` centred over column k (cells ``cell`` pixels wide, ``padding`` between)."""
    from PIL import Image, ImageDraw, ImageFont

    band = header_height(labels)
    if band == 0:
        return grid
    rgb = grid if grid.shape[-1] == 3 else np.repeat(grid[..., :1], 3, axis=-1)
    out = np.full((rgb.shape[0] + band, rgb.shape[1], 3), 255, np.uint8)
    out[band:] = rgb
    img = Image.fromarray(out)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for k, text in enumerate(labels):
        centre = padding + k * (cell + padding) + cell / 2
        width = draw.textlength(text, font=font)
        if width > cell + padding and text.startswith("t="):
            text = text[2:]  # keep the number when "t=999" does not fit over a narrow column
            width = draw.textlength(text, font=font)
        draw.text((centre - width / 2, 0), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)
