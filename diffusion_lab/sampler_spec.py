"""High-level sampling: a solver, a spacing and a step count, with per-sample seeds.

For a VP model the prior at the top of the grid is x_vp ~ N(0, I); in sigma space
x_T = x_vp / sqrt(ab) = sqrt(1 + sigma_max^2) z, z ~ N(0, I), sigma_max = sigmas[0].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor

from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.samplers import solver_nfe
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.types import Denoiser, StepCallback, StepInfo

__all__ = ["INITIAL_NOISE_STREAM", "STEP_NOISE_STREAM", "SamplerSpec", "TrajectoryRecorder"]

INITIAL_NOISE_STREAM = 0  #: PerSampleNoise stream of x_T
STEP_NOISE_STREAM = 1  #: PerSampleNoise stream of the per-step noise of stochastic solvers


@dataclass
class SamplerSpec:
    """``solver`` (a sampler function, possibly functools.partial'ed), ``spacing`` (a spacing
    instance) and ``steps`` (grid steps, >= 1; <= T for integer spacings, checked when sampling)."""

    solver: Callable
    spacing: Callable[[NoiseSchedule, int], Tensor]
    steps: int

    def __post_init__(self) -> None:
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, Real) or int(steps) != steps or steps < 1:
            raise ValueError(f"SamplerSpec.steps must be an integer >= 1, got {self.steps!r}")
        self.steps = int(self.steps)

    @property
    def nfe(self) -> int:
        """Denoiser evaluations per sample (guidance batches cond/uncond in one evaluation)."""
        return solver_nfe(self.solver, self.steps)

    def sigmas(self, schedule: NoiseSchedule) -> Tensor:
        """The descending float64 grid (steps + 1 levels, last 0) this spec visits. A spacing
        fitted for one solver (``check_solver``: the optimized grids) is told which one runs."""
        check = getattr(self.spacing, "check_solver", None)
        if check is not None:
            check(self.solver)
        return self.spacing(schedule, self.steps)

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        schedule: NoiseSchedule,
        shape: Sequence[int],
        *,
        cond: Tensor | None = None,
        seed: int = 0,
        indices: Sequence[int] | Tensor | None = None,
        callback: StepCallback | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Draw x0 samples of ``shape`` (float32). Sample ``indices[b]`` (default range(B)) depends
        only
        on (seed, index): x_T from stream 0 and step noise from stream 1 of PerSampleNoise."""
        shape = tuple(int(s) for s in shape)
        indices = range(shape[0]) if indices is None else indices
        initial = PerSampleNoise(seed, indices, stream=INITIAL_NOISE_STREAM)
        if len(initial) != shape[0]:
            raise ValueError(f"got {len(initial)} indices for a batch of {shape[0]}")
        sigmas = self.sigmas(schedule)
        scale = math.sqrt(1.0 + float(sigmas[0]) ** 2)
        x = initial.sample(shape, device, torch.float32) * scale
        step_noise = PerSampleNoise(seed, indices, stream=STEP_NOISE_STREAM)
        return self.solver(denoiser, x, sigmas, cond=cond, callback=callback, noise=step_noise)


class TrajectoryRecorder:
    """Step callback keeping (detached clones of) x and denoised at the requested step indices.

    Step i sees x at sigmas[i]; the final sample (sigma = 0) is the sampler's return value. For an
    x_t strip at t in {T, 3T/4, T/2, T/4} use ``strip_indices(n)`` and append the returned sample.
    """

    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = {int(i) for i in indices}
        self.x: dict[int, Tensor] = {}
        self.denoised: dict[int, Tensor] = {}
        self.sigmas: dict[int, float] = {}

    def __call__(self, info: StepInfo) -> None:
        if info.i in self.indices:
            self.x[info.i] = info.x.detach().clone()
            self.denoised[info.i] = info.denoised.detach().clone()
            self.sigmas[info.i] = info.sigma

    @staticmethod
    def strip_indices(num_steps: int, num_frames: int = 4) -> list[int]:
        """Step indices round(k n / num_frames), k < num_frames: with 4 frames the steps at
        0, 1/4, 1/2, 3/4 of the grid, i.e. t ~ T, 3T/4, T/2, T/4 (the frame t = 0 is the
        final sample)."""
        if num_steps < 1 or num_frames < 1:
            raise ValueError("num_steps and num_frames must be >= 1")
        return sorted({round(k * num_steps / num_frames) for k in range(num_frames)})
