"""The x_t strip callback: :class:`~diffusion_lab.visualization.xt_strips.XtStrips` logged
through the run's logger every ``every_n_steps`` and at the end of training, with their cost
beside the training step's (global rank 0 only)."""

from __future__ import annotations

import logging
import statistics
import time

import lightning as L

from diffusion_lab.evaluation import describe_sampler
from diffusion_lab.loggers.media import log_animation, log_image, log_scalars, log_table
from diffusion_lab.visualization.xt_strips import XtStrips

log = logging.getLogger(__name__)


class StepClock:
    """Wall time between consecutive training-batch ends (the last ``window``), leaving out
    the intervals in which the caller did its own work (``pause()``)."""

    def __init__(self, window: int = 50) -> None:
        self.window, self.times, self._t = window, [], None

    def tick(self) -> None:
        now = time.perf_counter()
        if self._t is not None:
            self.times = [*self.times[-(self.window - 1):], now - self._t]
        self._t = now

    def pause(self) -> None:
        self._t = None

    def count(self) -> int:
        return len(self.times)

    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


class XtStrip(XtStrips, L.Callback):
    """Logs the strips (and the animation) every ``every_n_steps`` and at the end of training;
    the strips themselves are :class:`~diffusion_lab.visualization.xt_strips.XtStrips`."""

    def __init__(self, every_n_steps: int = 500, **strips) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        super().__init__(**strips)
        self.every_n_steps = every_n_steps
        self.step_clock = StepClock()  # training step time, to state what the strips cost
        self.last: dict | None = None  # what the last call made (paths, t values), for tests

    def make(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        image_data = len(module.sample_shape) == 3
        x0_real = self.real_batch(trainer.datamodule, self.num_samples if image_data
                                   else self.num_points)
        if x0_real is None:
            log.info("x_t strip skipped: it needs the trainer's datamodule for real images")
            return
        start = time.perf_counter()
        s, images = self.figures(module, x0_real, f"step {step}")
        paths = {name: log_image(trainer, f"xt_strip/{name}", image, step, caption=caption)
                 for name, (image, caption) in images.items()}
        log_table(trainer, "xt_strip/columns", ["column", "t", "sigma", "sampler_step"],
                  [[k, t, sg, i] for k, (t, sg, i) in enumerate(zip(s["t"], s["sigma"],
                                                                     s["steps"]))], step)
        self.last = {"step": step, "t": s["t"], "paths": paths, "rows": x0_real.shape[0],
                     "columns": len(s["t"]), "seconds": time.perf_counter() - start}
        if s["trajectory"] is not None:
            start = time.perf_counter()
            title = f"{describe_sampler(module.sampler)}, step {step}"
            frames = self.animation.frames(module, s["trajectory"], x0_real, s["noise"],
                                           s["labels"], title)
            self.last["animation"] = log_animation(
                trainer, "xt_strip/animation", frames, step, s["trajectory"].frame_labels(),
                caption=title, fps=self.animation.fps)
            self.last["animation_seconds"] = time.perf_counter() - start
            self.last["frames"] = len(frames)
        cost = {k: self.last[k] for k in ("seconds", "animation_seconds") if k in self.last}
        log_scalars(trainer, {f"xt_strip/{k}": v for k, v in cost.items()}, step)
        log.info("x_t strips %.2fs, animation (%d frames) %.2fs at step %d; a training step "
                 "%.3fs (median of the last %d)", self.last["seconds"], self.last.get("frames", 0),
                 self.last.get("animation_seconds", 0.0), step, self.step_clock.median(),
                 self.step_clock.count())

    # ------------------------------------------------------------------ hooks
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.step_clock.tick()
        step = trainer.global_step
        if (step > 0 and step % self.every_n_steps == 0 and step < (trainer.max_steps or -1)
                and (self.last is None or self.last["step"] != step)):
            self.make(trainer, pl_module)
            self.step_clock.pause()

    def on_train_end(self, trainer, pl_module):
        self.make(trainer, pl_module)
