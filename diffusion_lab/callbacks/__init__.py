"""Lightning callbacks of the experiment dashboard; each writes its PNG/JSON under
<run_dir>/media/ and logs through ``diffusion_lab.loggers.media`` (rank 0, EMA weights, fixed
per-sample seeds).

* ``SampleGrid``: sample grids, one row per class.
* ``XtStrip``: reverse x_t / predicted x0 and forward q(x_t | x0) at t = T, 3T/4, T/2, T/4, 0.
* ``GuidanceSweep``: FID and classifier accuracy against the guidance scale w.
* ``LossByTimestep``: training loss binned over t.
* ``ModeCoverage``: predicted-class histogram of unconditional samples.
* ``Memorization``: near-copies of training images among unconditional samples.
* ``TimeEmbeddingHealth``: does the output change with t (a dead timestep embedding)?
* ``ScheduleView``: log SNR and alpha_bar against t beside the presets, the sampler's levels.
"""

from diffusion_lab.callbacks.guidance_sweep import GuidanceSweep
from diffusion_lab.callbacks.loss_by_timestep import LossByTimestep, TimestepLossAccumulator
from diffusion_lab.callbacks.memorization import Memorization
from diffusion_lab.callbacks.mode_coverage import ModeCoverage
from diffusion_lab.callbacks.sample_grid import SampleGrid
from diffusion_lab.callbacks.schedule_view import ScheduleView
from diffusion_lab.callbacks.xt_strip import XtStrip

__all__ = [
    "GuidanceSweep",
    "LossByTimestep",
    "Memorization",
    "ModeCoverage",
    "SampleGrid",
    "ScheduleView",
    "TimestepLossAccumulator",
    "XtStrip",
]
