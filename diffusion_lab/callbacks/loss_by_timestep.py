"""Training loss binned over the timestep t: shows a regime (e.g. the middle t) the network fails.

Every training batch adds its per-sample (weighted) losses and their t, which the module's
``training_step`` returns (``outputs["per_sample_loss"]``, ``outputs["t"]`` of
``on_train_batch_end``), to ``num_bins`` equal-width bins over [0, T) with ``index_add_`` on the
training device: no host synchronisation per step. Only when logging are the sums moved to the
host (summed over processes first under DDP):

* every ``every_n_steps``: scalars ``loss_by_t/bin_XX`` = mean loss of the samples of bin XX
  seen since the previous logging point (NaN for a bin that saw none);
* every ``plot_every_n_steps`` and at the end of training: a bar chart ``loss_by_t/chart`` of
  the per-bin mean loss since the previous chart, and a table ``loss_by_t/table``
  (bin, t_lo, t_hi, mean_loss, count).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor

from diffusion_lab.loggers.media import log_bar, log_scalars, log_table


class TimestepLossAccumulator:
    """Per-bin sums and counts of losses over integer timesteps t in [0, T), on device.

    Bin k holds t with floor(t * num_bins / T) == k, i.e. t in [ceil(k T / n), ceil((k+1) T / n)).
    """

    def __init__(self, num_train_steps: int, num_bins: int = 10):
        if num_bins < 1 or num_train_steps < num_bins:
            raise ValueError(f"need 1 <= num_bins <= T, got num_bins={num_bins}, "
                             f"T={num_train_steps}")
        self.num_train_steps = int(num_train_steps)
        self.num_bins = int(num_bins)
        self.sums: Tensor | None = None
        self.counts: Tensor | None = None

    def _alloc(self, device: torch.device) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.sums = torch.zeros(self.num_bins, dtype=dtype, device=device)
        self.counts = torch.zeros(self.num_bins, dtype=dtype, device=device)

    def add(self, loss: Tensor, t: Tensor) -> None:
        """Accumulate per-sample ``loss`` (B,) at integer timesteps ``t`` (B,); no sync."""
        if loss.shape != t.shape or loss.ndim != 1:
            raise ValueError(f"loss and t must both be (B,), got {tuple(loss.shape)} and "
                             f"{tuple(t.shape)}")
        if self.sums is None or self.sums.device != loss.device:
            previous = None if self.sums is None else (self.sums, self.counts)
            self._alloc(loss.device)
            if previous is not None:
                self.sums += previous[0].to(loss.device)
                self.counts += previous[1].to(loss.device)
        bins = (t.long() * self.num_bins).div(self.num_train_steps, rounding_mode="floor")
        bins = bins.clamp_(0, self.num_bins - 1)
        self.sums.index_add_(0, bins, loss.detach().to(self.sums.dtype))
        self.counts.index_add_(0, bins, torch.ones_like(self.counts[:1]).expand(bins.shape[0]))

    def reset(self) -> None:
        if self.sums is not None:
            self.sums.zero_()
            self.counts.zero_()

    def totals(self, reduce=None) -> tuple[Tensor, Tensor]:
        """(sums, counts) as float64 CPU tensors (zeros if nothing was added). ``reduce`` (e.g.
        a DDP sum over processes) is applied to the stacked device tensor first."""
        if self.sums is None:
            zeros = torch.zeros(self.num_bins, dtype=torch.float64)
            return zeros, zeros.clone()
        both = torch.stack([self.sums, self.counts])
        if reduce is not None:
            both = reduce(both)
        both = both.double().cpu()  # the one host sync
        return both[0], both[1]

    def means(self, reduce=None) -> tuple[Tensor, Tensor]:
        """(per-bin mean loss with NaN for empty bins, counts), float64 on CPU."""
        sums, counts = self.totals(reduce)
        means = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, math.nan))
        return means, counts

    def bin_edges(self) -> list[tuple[int, int]]:
        """[(t_lo, t_hi)] inclusive integer timestep range of each bin."""
        T, n = self.num_train_steps, self.num_bins
        return [(math.ceil(k * T / n), math.ceil((k + 1) * T / n) - 1) for k in range(n)]


class LossByTimestep(L.Callback):
    def __init__(self, num_bins: int = 10, every_n_steps: int = 100,
                 plot_every_n_steps: int = 500):
        if every_n_steps < 1 or plot_every_n_steps < 1:
            raise ValueError("every_n_steps and plot_every_n_steps must be >= 1")
        self.num_bins = num_bins
        self.every_n_steps = every_n_steps
        self.plot_every_n_steps = plot_every_n_steps
        self.window: TimestepLossAccumulator | None = None  # since the last scalars
        self.chart: TimestepLossAccumulator | None = None  # since the last chart
        self._chart_start = 0
        self._last_scalar_step = -1
        self._last_chart_step = -1
        self.charts: list[dict] = []  # what each chart showed (step range, counts), for tests

    def on_train_start(self, trainer, pl_module):
        T = pl_module.schedule.num_steps
        self.window = TimestepLossAccumulator(T, self.num_bins)
        self.chart = TimestepLossAccumulator(T, self.num_bins)
        self._chart_start = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not isinstance(outputs, dict) or "per_sample_loss" not in outputs:
            return  # a step that returned no per-sample losses
        loss, t = outputs["per_sample_loss"], outputs["t"]
        self.window.add(loss, t)
        self.chart.add(loss, t)
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_scalar_step:
            self._log_scalars(trainer, step)
        if step > 0 and step % self.plot_every_n_steps == 0 and step != self._last_chart_step:
            self._log_chart(trainer, step)

    def on_train_end(self, trainer, pl_module):
        step = trainer.global_step
        if step != self._last_scalar_step:
            self._log_scalars(trainer, step)
        if step != self._last_chart_step:
            self._log_chart(trainer, step)

    def _reduce(self, trainer):
        strategy = trainer.strategy
        return lambda x: strategy.reduce(x, reduce_op="sum")

    def _log_scalars(self, trainer, step: int) -> None:
        # Every process reaches this point (same global step): the DDP reduction is collective.
        means, counts = self.window.means(self._reduce(trainer))
        self.window.reset()
        self._last_scalar_step = step
        if counts.sum() == 0:
            return
        log_scalars(trainer, {f"loss_by_t/bin_{k:02d}": float(m) for k, m in enumerate(means)},
                    step)

    def _log_chart(self, trainer, step: int) -> None:
        means, counts = self.chart.means(self._reduce(trainer))
        self.chart.reset()
        start, self._chart_start, self._last_chart_step = self._chart_start, step, step
        total = int(counts.sum())
        if total == 0 or not trainer.is_global_zero:
            return
        edges = self.chart.bin_edges()
        labels = [f"{lo}-{hi}" for lo, hi in edges]
        title = (f"training loss by timestep t, steps {start + 1}-{step} ({total} samples, "
                 f"T = {self.chart.num_train_steps})")
        png = log_bar(trainer, "loss_by_t/chart", labels, means.tolist(), step, "t",
                      "mean training loss", title=title)
        rows = [[k, lo, hi, float(m), int(c)]
                for k, ((lo, hi), m, c) in enumerate(zip(edges, means, counts))]
        table = log_table(trainer, "loss_by_t/table",
                          ["bin", "t_lo", "t_hi", "mean_loss", "count"], rows, step)
        self.charts.append({"step": step, "first_step": start + 1, "counts": counts.tolist(),
                            "means": means.tolist(), "png": png, "table": table})
