"""Drawing 2-D point sets so that nothing is hidden: axis limits that hold the data, class
colours, and points outside the axes (or non-finite) drawn as red crosses on the border and
counted in the panel title, never silently clipped away.

Each panel holds two scatter artists, ``gid="points"`` (the points inside the axes, coloured by
class) and ``gid="outside"`` (the others, clamped to the border), so a test or a frame update
can read or move exactly what is drawn. Object-oriented Matplotlib only (no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: class colours (matplotlib's tab10), cycled for more than ten classes
CLASS_COLOURS = np.array([
    (0.122, 0.467, 0.706), (1.000, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.498, 0.498, 0.498),
    (0.737, 0.741, 0.133), (0.090, 0.745, 0.812),
])


def square_limits(*point_sets: np.ndarray, minimum: float = 3.0, margin: float = 1.1
                  ) -> tuple[float, float]:
    """(-h, h) with h = max(minimum, margin * largest finite |coordinate| of the point sets)."""
    h = float(minimum)
    for points in point_sets:
        finite = np.asarray(points, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            h = max(h, margin * float(np.abs(finite).max()))
    return -h, h


def reference_limits(dm, n: int = 1000) -> tuple[float, float] | None:
    """Axis limits of 2-D views from real data (``n`` training points of the datamodule
    ``dm``), so that stray samples are drawn on the border rather than shrinking the data;
    None without data."""
    if dm is None or getattr(dm, "train_set", None) is None:
        return None
    return square_limits(dm.real_batch(min(n, len(dm.train_set)), split="train").numpy())


def class_colours(labels: np.ndarray | None, n: int) -> np.ndarray:
    """(n, 3) RGB per point: class c gets CLASS_COLOURS[c mod 10]; no labels: the first colour."""
    if labels is None:
        return np.repeat(CLASS_COLOURS[:1], n, axis=0)
    return CLASS_COLOURS[np.asarray(labels, dtype=np.int64) % len(CLASS_COLOURS)]


def split_outside(points: np.ndarray, limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(inside mask, border positions of the others): a point outside [lo, hi]^2 is clamped to
    the border along its own direction per coordinate; a non-finite one goes to the corner."""
    lo, hi = limits
    points = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(points).all(axis=1)
    inside = finite & ((points >= lo) & (points <= hi)).all(axis=1)
    border = np.clip(np.nan_to_num(points[~inside], nan=hi, posinf=hi, neginf=lo), lo, hi)
    return inside, border


class PointsPanel:
    """One axes showing a 2-D point set; ``update(points)`` moves the points (for animations)."""

    def __init__(self, ax, limits: tuple[float, float], labels: np.ndarray | None = None,
                 size: float = 3.0) -> None:
        self.ax, self.limits, self.labels = ax, limits, labels
        self.points = ax.scatter([], [], s=size, linewidths=0, gid="points")
        self.outside = ax.scatter([], [], s=14, marker="x", c="red", linewidths=1,
                                  gid="outside")
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
        ax.set_aspect("equal")

    def update(self, points: np.ndarray, title: str = "") -> int:
        """Draw ``points`` (N, 2); returns how many fall outside the axes (titled when > 0)."""
        points = np.asarray(points, dtype=np.float64)
        inside, border = split_outside(points, self.limits)
        colours = class_colours(self.labels, len(points))
        self.points.set_offsets(points[inside] if inside.any() else np.empty((0, 2)))
        self.points.set_facecolor(colours[inside])
        self.outside.set_offsets(border if len(border) else np.empty((0, 2)))
        n_out = len(border)
        if n_out:
            title = f"{title}\n{n_out} of {len(points)} outside the axes"
        self.ax.set_title(title, fontsize=9)
        return n_out

    def drawn(self) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
        """(inside points, border crosses, xlim, ylim) as drawn now: what a viewer sees."""
        return (np.array(self.points.get_offsets()), np.array(self.outside.get_offsets()),
                self.ax.get_xlim(), self.ax.get_ylim())


def figure_row(ncols: int, panel_size: float = 3.2):
    """A ``Figure`` with one row of ``ncols`` axes (no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel_size * ncols, panel_size + 0.4))
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def render(fig) -> np.ndarray:
    """Draw ``fig`` on an Agg canvas and return its pixels as uint8 RGB (H, W, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def scatter_row_figure(point_sets: Sequence[np.ndarray], titles: Sequence[str], suptitle: str = "",
                       labels: np.ndarray | None = None,
                       limits: tuple[float, float] | None = None):
    """One row of 2-D scatter panels sharing ``limits`` (default: :func:`square_limits` of all
    the sets); returns the ``Figure``, whose panels' artists tests can inspect."""
    if len(point_sets) != len(titles):
        raise ValueError(f"{len(point_sets)} point sets but {len(titles)} titles")
    limits = limits or square_limits(*point_sets)
    fig, axes = figure_row(len(point_sets))
    for ax, points, title in zip(axes, point_sets, titles):
        PointsPanel(ax, limits, labels).update(points, title)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
