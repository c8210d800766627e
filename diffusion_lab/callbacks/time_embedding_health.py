"""Timestep-embedding health on the dashboard: does the EMA network's output change with t?

At fixed noisy inputs x (``num_inputs`` validation images noised once to the middle of the
schedule, with a fixed seed), the output of the EMA backbone is computed at ``num_timesteps``
values of t spread over [0, T-1]; ``diagnostics.time_embedding.timestep_sensitivity`` gives the
relative spread over t of the output and of each layer that takes the embedding. Logged:

* scalars ``time_embedding/output_spread`` and ``time_embedding/dead`` (1 when the spread is
  below ``threshold``: the network ignores t);
* a bar chart ``time_embedding/layers`` of the per-layer spreads (where t enters);
* when dead, a warning in the log and a one-row table ``time_embedding/warning`` on the
  dashboard. ``last`` holds the latest result.

Runs before ``min_step`` are skipped: an untrained zero-initialised head has no output at all.
"""

from __future__ import annotations

import logging

from diffusion_lab.callbacks.periodic import PeriodicMetric
from diffusion_lab.diagnostics.time_embedding import (
    DEAD_THRESHOLD,
    health_on_data,
)
from diffusion_lab.loggers.media import log_bar, log_scalars, log_table

log = logging.getLogger(__name__)


class TimeEmbeddingHealth(PeriodicMetric):
    def __init__(self, num_inputs: int = 16, num_timesteps: int = 8, threshold: float = DEAD_THRESHOLD,
                 seed: int = 0, every_n_steps: int | None = None, at_train_end: bool = True,
                 min_step: int = 0):
        if num_inputs < 1 or num_timesteps < 2:
            raise ValueError("num_inputs must be >= 1 and num_timesteps >= 2")
        super().__init__(every_n_steps, at_train_end, min_step)
        self.num_inputs, self.num_timesteps = num_inputs, num_timesteps
        self.threshold, self.seed = threshold, seed

    def make(self, trainer, module) -> None:
        if self.too_early(trainer) or not trainer.is_global_zero:
            return
        data = trainer.datamodule.val_set or trainer.datamodule.train_set
        x0 = data.x[: self.num_inputs].to(module.device)
        cond = data.y[: self.num_inputs].to(module.device) if module.num_classes > 0 else None
        result = health_on_data(module.ema.model, module.schedule, x0, cond, self.num_timesteps,
                                self.threshold, self.seed)
        step = trainer.global_step
        dead = result["status"] == "dead"
        log_scalars(trainer, {"time_embedding/output_spread": result["output"],
                              "time_embedding/dead": float(dead)}, step)
        if result["layers"]:
            names = list(result["layers"])
            log_bar(trainer, "time_embedding/layers", names, list(result["layers"].values()), step,
                    "layer", "relative spread over t",
                    title=f"output change with t per layer, step {step} "
                          f"(output {result['output']:.3g})")
        if dead:
            message = (f"the network output does not depend on the timestep (relative spread "
                       f"{result['output']:.2e} < {self.threshold:g}): the timestep embedding "
                       "is dead, samples will not denoise properly")
            log.warning("step %d: %s", step, message)
            log_table(trainer, "time_embedding/warning", ["step", "warning"], [[step, message]], step)
        self.last = {"step": step, **result}
