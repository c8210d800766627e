"""The run's noise schedule on the dashboard, beside the shipped ones, with the sampler's levels.

At the start of training (rank 0), for the run's schedule (named after the preset it equals) and
each preset in ``compare`` (``conf/schedule/<name>.yaml`` at the run's number of timesteps):

* ``schedule/log_snr``: log SNR(t) = log(ab_t / (1 - ab_t)) = -2 log sigma_t against t, the
  curve that says where a schedule spends its timesteps (the same for every parametrisation);
* ``schedule/alpha_bar``: the signal fraction ab_t against t (how fast the data is destroyed;
  the flow path's VP-equivalent ab_t = 1 / (1 + sigma_t^2));
* ``schedule/sampler_levels``: a table of the noise levels the run's sampler evaluates the
  network at (sigma_i, the continuous t_i = sigma_to_t(sigma_i), log SNR_i), so a grid that
  spends evaluations in a schedule's tail (cosine at t close to T) shows up before any sample
  is drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning as L
import torch

from diffusion_lab.loggers.media import log_line, log_table

log = logging.getLogger(__name__)
LOG_SNR_FLOOR = -40.0


def sampler_levels(schedule, sigmas: torch.Tensor) -> list[list[float]]:
    """[i, sigma_i, t_i, log SNR_i] for each positive level of a sampler's sigma grid."""
    positive = sigmas[sigmas > 0].double()
    t = schedule.sigma_to_t(positive)
    return [[i, float(s), float(ti), float(-2.0 * torch.log(s))]
            for i, (s, ti) in enumerate(zip(positive, t))]


class ScheduleView(L.Callback):
    def __init__(self, compare: Sequence[str] = ("linear", "cosine", "sigmoid")) -> None:
        self.compare = list(compare)

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        from hydra.utils import instantiate

        from diffusion_lab.presets import schedule_preset

        ours = getattr(pl_module, "schedule", None)
        if ours is None:
            return
        n = ours.num_steps
        presets = {}
        for name in self.compare:
            try:
                presets[name] = instantiate(schedule_preset(name, n))
            except (ValueError, TypeError) as e:  # a preset that does not exist or build at n
                log.warning("schedule view: %s left out (%s)", name, e)
        # the run's own curve, named after the preset it equals (drawn once)
        same = [k for k, s in presets.items() if torch.equal(s.alpha_bars, ours.alpha_bars)]
        curves = {f"this run ({same[0]})" if same else "this run": ours,
                  **{k: s for k, s in presets.items() if k not in same[:1]}}
        step = trainer.global_step
        t = list(range(n))
        # zero terminal SNR has log SNR = -inf at t = T-1: clipped so the curve can be drawn
        log_snr = {name: s.log_snr.double().clamp(min=LOG_SNR_FLOOR).tolist()
                   for name, s in curves.items()}
        log_line(trainer, "schedule/log_snr", t, log_snr, step, "timestep t",
                 f"log SNR (clipped at {LOG_SNR_FLOOR:g})", title=f"log SNR(t), T = {n}",
                 marker=None)
        log_line(trainer, "schedule/alpha_bar", t,
                 {name: s.alpha_bars.double().tolist() for name, s in curves.items()},
                 step, "timestep t", "alpha_bar (signal fraction)", title=f"alpha_bar(t), T = {n}",
                 marker=None)
        sampler = getattr(pl_module, "sampler", None)
        if sampler is not None:
            rows = sampler_levels(ours, sampler.sigmas(ours))
            log_table(trainer, "schedule/sampler_levels", ["level", "sigma", "t", "log_snr"], rows,
                      step)
