"""Matplotlib figures rendered to uint8 arrays (Agg backend, no display)."""

from __future__ import annotations

import io

import numpy as np


def _figure_to_array(fig) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def scatter_png(points: np.ndarray, title: str = "", reference: np.ndarray | None = None) -> np.ndarray:
    """Scatter plot of 2-D points (optionally over reference points) as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    if reference is not None:
        ax.scatter(reference[:, 0], reference[:, 1], s=2, c="lightgray", label="data")
    ax.scatter(points[:, 0], points[:, 1], s=2, c="tab:blue", label="samples")
    ax.set_title(title)
    ax.set_aspect("equal")
    arr = _figure_to_array(fig)
    plt.close(fig)
    return arr


def line_plot_png(
    xs, series: dict[str, list[float]], xlabel: str, ylabel: str, title: str = ""
) -> np.ndarray:
    """One or more curves over a shared x axis as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    arr = _figure_to_array(fig)
    plt.close(fig)
    return arr
