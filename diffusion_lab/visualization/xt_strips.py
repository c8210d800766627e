"""x_t strips: what the model sees and predicts along the reverse trajectory, beside the forward
process of real data at the same noise levels.

For t in {T, 3T/4, T/2, T/4, 0} (``t_fractions`` of T - 1) three images, rows = samples,
columns = the t values (labelled above each column and in the caption):

* ``xt_strip/reverse_xt``: the run's own sampler (solver, spacing and step count: the
  trajectory the sample grid follows) and its x_t at the grid level nearest each t (shown in the
  VP scale x_t = x / sqrt(1 + sigma^2), the scale of q(x_t | x0)); the t = 0 column is the
  sample. Each column is labelled with the t it actually shows;
* ``xt_strip/reverse_x0_hat``: the denoiser's prediction of x0 at those steps;
* ``xt_strip/forward``: x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise of real images at the same t,
  with fixed noise (one draw per image, reused at every t); the t = 0 column is x0 itself.

If the middle columns of ``reverse_x0_hat`` are noise while the forward strip still shows digits,
the network has not learned its middle regime. 2-D data gets a row of scatter plots per strip
(``num_points`` points, coloured by class, on axes that hold the real data; points outside are
drawn on the border and counted in the title). With ``animation`` (a ``TrajectoryAnimation``)
the same sampling run also records every level (the frames of the animated reverse process).
EMA weights, fixed per-sample seeds. Logged by ``callbacks/xt_strip.py``, drawn from a
checkpoint by ``scripts/visualize.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from diffusion_lab.evaluation import describe_sampler
from diffusion_lab.latent.display import latent_mosaic
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.sampler_spec import TrajectoryRecorder
from diffusion_lab.utils.images import make_grid
from diffusion_lab.utils.plots import label_columns, scatter_row_png
from diffusion_lab.utils.plots2d import square_limits
from diffusion_lab.visualization.animation import Trajectory, TrajectoryAnimation

#: PerSampleNoise stream of the forward strip's noise (0 and 1 belong to the samplers).
FORWARD_NOISE_STREAM = 2


def nearest_steps(schedule, sigmas: torch.Tensor, targets: Sequence[float]) -> list[int | None]:
    """For each target timestep, the index i < len(sigmas) - 1 of the grid level whose
    timestep is nearest (``None`` for targets <= 0: the final sample, sigma = 0)."""
    t_grid = schedule.sigma_to_t(sigmas[:-1])
    out = []
    for target in targets:
        out.append(None if target <= 0 else int((t_grid - float(target)).abs().argmin()))
    return out


class XtStrips:
    """Makes the three strips (and the recorded trajectory) from a module and real data."""

    def __init__(
        self,
        num_samples: int = 8,
        num_points: int = 500,
        seed: int = 0,
        guidance_scale: float | None = None,
        t_fractions: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0),
        animation: TrajectoryAnimation | None = None,
    ):
        if num_samples < 1 or num_points < 1:
            raise ValueError("num_samples and num_points must be >= 1")
        if not t_fractions or any(not 0.0 <= f <= 1.0 for f in t_fractions):
            raise ValueError(f"t_fractions must be non-empty and lie in [0, 1], got {t_fractions}")
        self.num_samples = num_samples
        self.num_points = num_points  # samples drawn for 2-D data (one scatter per column)
        self.seed = seed
        self.guidance_scale = guidance_scale
        self.t_fractions = [float(f) for f in t_fractions]
        self.animation = animation

    # ------------------------------------------------------------------ the strips
    @torch.no_grad()
    def strips(self, module, x0_real: torch.Tensor) -> dict:
        """Sample with the run's sampler and a trajectory recorder; return the three strips as
        lists of (N, ...) tensors, one per column, the t values of the columns, the class labels
        sampled, the forward noise and (with an animation) the recorded ``trajectory``."""
        schedule, spec = module.schedule, module.sampler
        sigmas = spec.sigmas(schedule)
        targets = [f * (schedule.num_steps - 1) for f in self.t_fractions]
        steps = nearest_steps(schedule, sigmas, targets)
        frames = self.animation.frame_steps(spec.steps) if self.animation is not None else []
        recorder = TrajectoryRecorder({i for i in steps if i is not None} | set(frames))
        codec = getattr(module, "codec", None)
        if codec is not None and tuple(x0_real.shape[1:]) != tuple(module.sample_shape):
            x0_real = codec.encode(x0_real.to(module.device)).cpu()  # images of a latent model
        n = x0_real.shape[0]
        labels = None
        if module.num_classes > 0:
            labels = torch.arange(n) % module.num_classes
        final = module.sample(n, labels=labels, sampler=spec, guidance_scale=self.guidance_scale,
                              seed=self.seed, callback=recorder, decode=False).cpu()
        noise = PerSampleNoise(self.seed, range(n), stream=FORWARD_NOISE_STREAM).sample(
            x0_real.shape)
        xt, x0_hat, forward, t_values, sigma_values = [], [], [], [], []
        for i in steps:
            if i is None:  # t = 0: the sample itself, and clean real data
                xt.append(final)
                x0_hat.append(final)
                forward.append(x0_real.cpu())
                t_values.append(0)
                sigma_values.append(0.0)
                continue
            sigma = recorder.sigmas[i]
            t = round(float(schedule.sigma_to_t(torch.tensor(sigma))))
            xt.append(recorder.x[i].cpu() / math.sqrt(1.0 + sigma**2))
            x0_hat.append(recorder.denoised[i].cpu())
            t_idx = torch.full((n,), t, dtype=torch.long)
            forward.append(schedule.q_sample(x0_real.cpu().float(), t_idx, noise))
            t_values.append(t)
            sigma_values.append(float(sigma))
        trajectory = (Trajectory.from_recorder(recorder, frames, final, schedule) if frames
                      else None)
        if codec is not None and trajectory is not None:  # the animation shows decoded images
            trajectory.x = [module.decode(x.to(module.device)).cpu() for x in trajectory.x]
            trajectory.x0_hat = [module.decode(x.to(module.device)).cpu() for x in trajectory.x0_hat]
        return {"reverse_xt": xt, "reverse_x0_hat": x0_hat, "forward": forward,
                "t": t_values, "sigma": sigma_values, "steps": steps, "labels": labels,
                "noise": noise, "trajectory": trajectory}

    def figures(self, module, x0_real: torch.Tensor, when: str) -> tuple[dict, dict]:
        """(:meth:`strips`, {strip name: (image, caption)}); ``when`` ends the captions."""
        s = self.strips(module, x0_real)
        t_text = ", ".join(str(t) for t in s["t"])
        where = f"{describe_sampler(module.sampler)}, {when}"
        titles = {
            "reverse_xt": "reverse x_t",
            "reverse_x0_hat": "reverse: predicted x0",
            "forward": "forward q(x_t | x0), real data",
        }
        image_data = x0_real.dim() == 4
        limits = None if image_data else square_limits(*(c.numpy() for c in s["forward"]))
        latent = getattr(module, "codec", None) is not None
        images = {}
        for name, title in titles.items():
            caption = f"{title} at t = {t_text} (T = {module.schedule.num_steps}; {where})"
            if image_data and latent:  # the latents themselves, and what they decode to
                decoded = [module.decode(c.to(module.device)).cpu() for c in s[name]]
                images[f"decoded_{name}"] = (self._image_strip(decoded, s["t"]),
                                             f"decoded {caption}; rows: samples, columns: t")
                image = self._image_strip([latent_mosaic(c) for c in s[name]], s["t"])
                caption = (f"latent {caption}; each tile: the latent's channels side by side, "
                           "values / 3; rows: samples, columns: t")
            elif image_data:
                image = self._image_strip(s[name], s["t"])
                caption += "; rows: samples, columns: t"
            else:
                labels = None if name == "forward" or s["labels"] is None else s["labels"].numpy()
                image = scatter_row_png([c.numpy() for c in s[name]], [f"t={t}" for t in s["t"]],
                                        suptitle=caption, labels=labels, limits=limits)
            images[name] = (image, caption)
        return s, images

    def real_batch(self, dm, n: int) -> torch.Tensor | None:
        """``n`` fixed real samples (fewer if the data is smaller): validation split if any."""
        if dm is None:
            return None
        split = "val" if dm.val_set is not None and len(dm.val_set) >= n else "train"
        n = min(n, len(dm.val_set if split == "val" else dm.train_set))
        return dm.real_batch(n, split=split, seed=self.seed)

    @staticmethod
    def _image_strip(columns: list[torch.Tensor], t_values: list[int]):
        """(N, C, H, W) per column -> one labelled grid, rows = samples, columns = t."""
        ncol = len(columns)
        tiles = torch.stack(columns, dim=1).flatten(0, 1)  # (N * ncol, C, H, W), row-major
        upscale = max(1, 32 // tiles.shape[-1])
        grid = make_grid(tiles, nrow=ncol, upscale=upscale)
        return label_columns(grid, [f"t={t}" for t in t_values], tiles.shape[-1] * upscale)
