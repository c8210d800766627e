"""Animations of the reverse process, made from the trajectory the x_t strip already records
(no extra sampling; only the 2-D field costs denoiser calls, on a small grid).

* 2-D data: one frame per recorded noise level, two panels sharing the axes:
  left, the forward process q(x_t | x0) of real points at that level,
  x_t = (x0 + sigma noise) / sqrt(1 + sigma^2) with one fixed noise draw per point;
  right, the sampler's points x_t (same VP scale) moving from the prior to the data, over the
  denoiser's field: at each grid point g an arrow towards D(g sqrt(1 + sigma^2), sigma) - g,
  where the denoiser puts the clean point of g (drawn at ``arrow_fraction`` of its length, at
  most one grid cell long; the unconditional field D(., sigma, null) for class-conditional
  models). Points coloured by
  class; points that leave the axes are drawn on the border and counted.
* Images: the sample grid of x_t (VP scale) beside the grid of predicted x0 at each level; the
  last frame is the sampler's output on both sides.

Frames: the first grid level, up to ``max_frames - 2`` more spread evenly over the grid, and the
final sample (sigma = 0). See ``XtStrip(animation=...)`` and ``scripts/visualize.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from diffusion_lab.sampler_spec import TrajectoryRecorder
from diffusion_lab.utils.images import make_grid
from diffusion_lab.utils.plots import label_columns
from diffusion_lab.utils.plots2d import PointsPanel, figure_row, render, square_limits


@dataclass
class Trajectory:
    """The recorded frames of one sampling run; the last entry of each list is the sample."""

    sigmas: list[float]
    t: list[int]
    x: list[torch.Tensor]  # x_t in the VP scale x / sqrt(1 + sigma^2)
    x0_hat: list[torch.Tensor]  # the denoiser's prediction of x0 at that level

    @classmethod
    def from_recorder(cls, recorder: TrajectoryRecorder, steps: list[int], final: torch.Tensor,
                      schedule) -> Trajectory:
        sig = [recorder.sigmas[i] for i in steps]
        t = [round(float(schedule.sigma_to_t(torch.tensor(s)))) for s in sig]
        x = [recorder.x[i].cpu() / math.sqrt(1.0 + s * s) for i, s in zip(steps, sig)]
        x0 = [recorder.denoised[i].cpu() for i in steps]
        final = final.cpu()
        return cls(sig + [0.0], t + [0], x + [final], x0 + [final])

    def frame_labels(self) -> list[str]:
        return [f"t = {t}, sigma = {s:.3g}" if s > 0 else "t = 0: the samples"
                for t, s in zip(self.t, self.sigmas)]


class TrajectoryAnimation:
    """Frames of the reverse process (see the module docstring); ``fps`` of the GIF/page."""

    def __init__(self, fps: float = 4.0, max_frames: int = 41, field_grid: int = 15,
                 arrow_fraction: float = 0.5) -> None:
        if fps <= 0 or max_frames < 2 or field_grid < 0 or arrow_fraction <= 0:
            raise ValueError("need fps > 0, max_frames >= 2, field_grid >= 0, arrow_fraction > 0")
        self.fps = float(fps)
        self.max_frames = int(max_frames)
        self.field_grid = int(field_grid)
        self.arrow_fraction = float(arrow_fraction)
        # per 2-D frame, PointsPanel.drawn() of each visible panel (forward, reverse)
        self.drawn: list[list[tuple]] = []

    def frame_steps(self, num_steps: int) -> list[int]:
        """Grid indices recorded as frames: all ``num_steps`` levels if they fit in
        ``max_frames - 1``, else that many spread evenly, always the first."""
        k = min(num_steps, self.max_frames - 1)
        return sorted({round(j * num_steps / k) for j in range(k)})

    @torch.no_grad()
    def frames(self, module, traj: Trajectory, x0_real: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, labels: torch.Tensor | None = None,
               title: str = "") -> list[np.ndarray]:
        """2-D data (``traj.x[k]`` of shape (N, 2)): :meth:`points_frames`; else image frames."""
        if traj.x[0].dim() == 2:
            return self.points_frames(module, traj, x0_real, noise, labels, title)
        return image_frames(traj)

    def points_frames(self, module, traj: Trajectory, x0_real, noise, labels, title: str = ""
                      ) -> list[np.ndarray]:
        labels = None if labels is None else labels.cpu().numpy()
        limits = square_limits(traj.x[0].numpy(),
                               *([] if x0_real is None else [x0_real.cpu().numpy()]))
        fig, axes = figure_row(2, panel_size=4.0)
        forward = PointsPanel(axes[0], limits)  # real points: no labels drawn with them
        axes[0].set_visible(x0_real is not None)
        reverse = PointsPanel(axes[1], limits, labels)
        grid, arrows = self._field_grid(limits), None
        if grid is not None:
            fields = self.fields(module, grid, traj.sigmas, cap=(limits[1] - limits[0])
                                 / (self.field_grid + 1) / self.arrow_fraction)
            arrows = axes[1].quiver(grid[:, 0], grid[:, 1], np.zeros(len(grid)),
                                    np.zeros(len(grid)), angles="xy", scale_units="xy",
                                    scale=1 / self.arrow_fraction, color="0.6", width=0.004,
                                    zorder=0)
        if title:
            fig.suptitle(title, fontsize=10)
        out, self.drawn = [], []
        for k, (sigma, label) in enumerate(zip(traj.sigmas, traj.frame_labels())):
            if x0_real is not None:
                xt = (x0_real.cpu().double() + sigma * noise.cpu().double()) / math.sqrt(1 + sigma**2)
                forward.update(xt.numpy(), f"forward q(x_t | x0), real data\n{label}")
            reverse.update(traj.x[k].numpy(), f"reverse: sampler's x_t\n{label}")
            if arrows is not None:
                arrows.set_UVC(fields[k, :, 0], fields[k, :, 1])
            out.append(render(fig))
            self.drawn.append([p.drawn() for p in (forward, reverse) if p.ax.get_visible()])
        return out

    def _field_grid(self, limits) -> np.ndarray | None:
        if self.field_grid == 0:
            return None
        ticks = np.linspace(limits[0], limits[1], self.field_grid + 2)[1:-1]
        gx, gy = np.meshgrid(ticks, ticks)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    @staticmethod
    def fields(module, grid: np.ndarray, sigmas: list[float], cap: float | None = None
               ) -> np.ndarray:
        """(len(sigmas), G, 2): D(g sqrt(1 + sigma^2), sigma) - g at each display point g, all
        levels in one batched call (zero at sigma = 0, where D(x, 0) = x); unconditional (null
        class) for class-conditional models; vectors longer than ``cap`` shortened to it (the
        high-noise estimates x - sigma eps_hat are too long to draw)."""
        g = torch.as_tensor(grid, dtype=torch.float32, device=module.device)
        sig = torch.tensor([max(s, 0.0) for s in sigmas], dtype=torch.float32,
                           device=module.device)
        live = sig > 0
        out = torch.zeros(len(sigmas), len(g), 2)
        if live.any():
            s = sig[live].repeat_interleave(len(g))  # (L * G,)
            x = g.repeat(int(live.sum()), 1) * torch.sqrt(1 + s * s)[:, None]
            denoiser = module.denoiser(guidance_scale=0.0 if module.num_classes > 0 else None)
            v = denoiser(x, s).float().view(-1, len(g), 2) - g
            out[live.cpu()] = v.cpu()
        if cap is not None:
            norm = out.norm(dim=-1, keepdim=True)
            out = out * torch.clamp(cap / norm.clamp_min(1e-12), max=1.0)
        return out.numpy()


def image_frames(traj: Trajectory) -> list[np.ndarray]:
    """Per level: the grid of x_t (VP scale, shown clipped to [-1, 1]) beside the grid of
    predicted x0, labelled; the last frame is the sampler's output on both sides."""
    n, size = traj.x[0].shape[0], traj.x[0].shape[-1]
    nrow, upscale = math.ceil(math.sqrt(n)), max(1, 32 // size)
    out = []
    for xt, x0 in zip(traj.x, traj.x0_hat):
        left = make_grid(xt, nrow=nrow, upscale=upscale)
        right = make_grid(x0, nrow=nrow, upscale=upscale)
        gap = np.full((left.shape[0], 6, left.shape[2]), 255, np.uint8)
        both = np.concatenate([left, gap, right], axis=1)
        out.append(label_columns(both, ["x_t", "predicted x0"], left.shape[1], padding=6))
    return out
