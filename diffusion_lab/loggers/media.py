"""The one place that knows how each experiment logger takes images, tables, charts and scalars.

Callbacks call these helpers with a Lightning trainer; whatever logger is attached (W&B,
TensorBoard, CSV, none) gets what it can show, and the run directory always gets a copy:

    <run_dir>/media/<key>/step<N>.png       images and rendered charts (key "a/b" -> "a_b")
    <run_dir>/media/<key>/step<N>.json      the data behind a chart
    <run_dir>/media/<key>_step<N>.json      tables
    <run_dir>/media/scalars.jsonl           every scalar of the run, one JSON line per log call
                                            (``loggers.run_record``: also Lightning's ``self.log``)

What each logger receives:

=========== ============================ ============================== ====================
helper      W&B                          TensorBoard                    CSV
=========== ============================ ============================== ====================
log_image   ``wandb.Image`` with caption ``add_image``                  (PNG file only)
log_table   ``wandb.Table``              ``add_text`` (pipe table)      (JSON file only)
log_line    ``wandb.plot.line`` /        ``add_image`` of the plot      (PNG + JSON only)
            ``line_series`` chart
log_bar     ``wandb.plot.bar`` chart     ``add_image`` of the plot      (PNG + JSON only)
log_scalars ``log_metrics``              ``log_metrics`` (scalars)      ``log_metrics``
log_anim... ``wandb.Video`` of the GIF   ``add_video`` (needs moviepy;  (GIF + HTML only)
                                         else first and last frames
                                         via ``add_images``)
=========== ============================ ============================== ====================

``log_animation`` also writes <run_dir>/media/<key>/step<N>.gif and step<N>.html (a
self-contained page with a slider over the frames).

W&B entries go through Lightning's ``WandbLogger.log_metrics``, which adds
``trainer/global_step`` instead of passing ``step=`` to ``wandb.log``: W&B's own step counter
then never runs ahead of the value we would pass, so nothing is dropped as "out of order".
Only global rank 0 writes files or talks to a logger; the other ranks get ``None`` back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffusion_lab.loggers.run_record import RunRecordLogger, append_scalars


def run_dir(trainer) -> Path:
    """The run's output directory (trainer.default_root_dir, set to the Hydra run dir)."""
    return Path(trainer.default_root_dir)


def media_path(trainer, key: str, step: int, suffix: str) -> Path:
    """<run_dir>/media/<key with / -> _>/step<step:07d><suffix>."""
    return run_dir(trainer) / "media" / key.replace("/", "_") / f"step{step:07d}{suffix}"


def _loggers(trainer):
    return list(getattr(trainer, "loggers", []) or [])


def _is_rank_zero(trainer) -> bool:
    return getattr(trainer, "global_rank", 0) == 0


def _kind(logger) -> str:
    return {"WandbLogger": "wandb", "TensorBoardLogger": "tensorboard"}.get(
        type(logger).__name__, "other"
    )


def _write_json(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def _send_image(trainer, key: str, image: np.ndarray, step: int, wandb_value) -> None:
    """W&B gets ``wandb_value()`` (built only when a W&B logger is attached), TensorBoard the
    image itself."""
    for logger in _loggers(trainer):
        kind = _kind(logger)
        if kind == "wandb":
            logger.log_metrics({key: wandb_value()}, step=step)
        elif kind == "tensorboard":
            logger.experiment.add_image(key, image, step, dataformats="HWC")


def log_image(trainer, key: str, image: np.ndarray, step: int, caption: str = "") -> Path | None:
    """Write ``image`` (uint8 H x W x C) to <run_dir>/media/<key>/step<step>.png and log it."""
    from diffusion_lab.utils.images import save_png

    if not _is_rank_zero(trainer):
        return None
    path = save_png(image, media_path(trainer, key, step, ".png"))

    def value():
        import wandb

        return wandb.Image(str(path), caption=caption)

    _send_image(trainer, key, image, step, value)
    return path


def log_table(trainer, key: str, columns: list[str], rows: list[list], step: int) -> Path | None:
    """A small table: W&B Table, TensorBoard text, and <run_dir>/media/<key>_step<N>.json."""
    if not _is_rank_zero(trainer):
        return None
    path = run_dir(trainer) / "media" / f"{key.replace('/', '_')}_step{step:07d}.json"
    _write_json({"columns": columns, "rows": rows}, path)
    for logger in _loggers(trainer):
        kind = _kind(logger)
        if kind == "wandb":
            import wandb

            logger.log_metrics({key: wandb.Table(columns=columns, data=rows)}, step=step)
        elif kind == "tensorboard":
            text = " | ".join(columns) + "\n" + "\n".join(" | ".join(map(str, r)) for r in rows)
            logger.experiment.add_text(key, text, step)
    return path


def log_scalars(trainer, metrics: dict[str, float], step: int) -> None:
    """Scalars to every logger (``log_metrics``) and a line of <run_dir>/media/scalars.jsonl."""
    if not _is_rank_zero(trainer) or not metrics:
        return
    metrics = {k: float(v) for k, v in metrics.items()}
    append_scalars(run_dir(trainer), step, metrics)
    for logger in _loggers(trainer):
        if not isinstance(logger, RunRecordLogger):  # the line above is its record
            logger.log_metrics(metrics, step=step)


def log_line(
    trainer,
    key: str,
    xs: Sequence[float],
    series: dict[str, Sequence[float]],
    step: int,
    xlabel: str,
    ylabel: str,
    title: str = "",
    marker: str | None = "o",
) -> Path | None:
    """A line chart of ``series`` (name -> ys) over ``xs``: PNG + JSON in the run directory,
    a native W&B line chart (one series: ``wandb.plot.line`` over a (xlabel, ylabel) table;
    several: ``wandb.plot.line_series``), the rendered PNG for TensorBoard."""
    from diffusion_lab.utils.images import save_png
    from diffusion_lab.utils.plots import line_plot_png

    if not _is_rank_zero(trainer):
        return None
    xs = [float(x) for x in xs]
    series = {name: [float(y) for y in ys] for name, ys in series.items()}
    image = line_plot_png(xs, series, xlabel, ylabel, title, marker=marker)
    path = save_png(image, media_path(trainer, key, step, ".png"))
    _write_json({"x": xs, "series": series, "xlabel": xlabel, "ylabel": ylabel, "title": title},
                media_path(trainer, key, step, ".json"))

    def chart():
        import wandb

        if len(series) == 1:
            (ys,) = series.values()
            table = wandb.Table(columns=[xlabel, ylabel], data=[list(p) for p in zip(xs, ys)])
            return wandb.plot.line(table, xlabel, ylabel, title=title)
        return wandb.plot.line_series(xs, list(series.values()), keys=list(series), title=title,
                                      xname=xlabel)

    _send_image(trainer, key, image, step, chart)
    return path


def log_bar(
    trainer,
    key: str,
    labels: Sequence[str],
    values: Sequence[float],
    step: int,
    xlabel: str,
    ylabel: str,
    title: str = "",
    reference: Sequence[float] | None = None,
    reference_label: str = "reference",
) -> Path | None:
    """A bar chart (one bar per label): PNG + JSON in the run directory, a native W&B bar
    chart (``wandb.plot.bar`` over a (xlabel, ylabel) table), the PNG for TensorBoard."""
    from diffusion_lab.utils.images import save_png
    from diffusion_lab.utils.plots import bar_plot_png

    if not _is_rank_zero(trainer):
        return None
    labels = [str(x) for x in labels]
    values = [float(v) for v in values]
    image = bar_plot_png(labels, values, xlabel, ylabel, title, reference, reference_label)
    path = save_png(image, media_path(trainer, key, step, ".png"))
    data = {"labels": labels, "values": values, "xlabel": xlabel, "ylabel": ylabel,
            "title": title}
    if reference is not None:
        data[reference_label] = [float(r) for r in reference]
    _write_json(data, media_path(trainer, key, step, ".json"))

    def chart():
        import wandb

        table = wandb.Table(columns=[xlabel, ylabel], data=[list(p) for p in zip(labels, values)])
        return wandb.plot.bar(table, xlabel, ylabel, title=title)

    _send_image(trainer, key, image, step, chart)
    return path


def log_animation(
    trainer,
    key: str,
    frames: Sequence[np.ndarray],
    step: int,
    frame_labels: Sequence[str],
    caption: str = "",
    fps: float = 4.0,
) -> dict[str, Path] | None:
    """An animation of uint8 (H, W, 3) ``frames``: <run_dir>/media/<key>/step<N>.gif and a
    self-contained step<N>.html (slider over the frames, ``frame_labels`` beside each); W&B
    gets ``wandb.Video`` of the GIF file (no moviepy/imageio needed); TensorBoard gets
    ``add_video`` when moviepy is installed, else the first and last frames (``add_images``)."""
    import importlib.util

    from diffusion_lab.utils.animation import save_gif, save_html_player

    if not _is_rank_zero(trainer):
        return None
    gif = save_gif(frames, media_path(trainer, key, step, ".gif"), fps)
    page = save_html_player(frames, frame_labels, media_path(trainer, key, step, ".html"),
                            title=f"{key}, step {step}", caption=caption, fps=fps)
    video = np.stack(frames).transpose(0, 3, 1, 2)[None]  # (1, T, C, H, W)
    for logger in _loggers(trainer):
        kind = _kind(logger)
        if kind == "wandb":
            import wandb

            logger.log_metrics({key: wandb.Video(str(gif), caption=caption, format="gif")},
                               step=step)
        elif kind == "tensorboard":
            if importlib.util.find_spec("moviepy") is not None:
                logger.experiment.add_video(key, video, step, fps=fps)
            else:  # add_video needs moviepy: show where the animation starts and ends
                logger.experiment.add_images(key + "/first_last", np.stack([frames[0], frames[-1]]),
                                             step, dataformats="NHWC")
    return {"gif": gif, "html": page}
