"""A diffusers training loop in the style of diffusers' own example
(examples/unconditional_image_generation/train_unconditional.py), class-conditional so its
samples can be judged per class: ``UNet2DModel``, ``DDPMScheduler``, AdamW with linear warm-up
and cosine decay (``get_cosine_schedule_with_warmup``), ``EMAModel`` with its warm-up
(decay_k = 1 - (1 + k / inv_gamma) ** -power, capped), gradient-norm clipping at 1, eps loss:

    x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps,   loss = ||eps - eps_theta(x_t, t, y)||^2,

with the label replaced by the null class with probability ``label_dropout`` (the same
classifier-free training as diffusion-lab's). Sampling: any diffusers scheduler built from the
training scheduler's config, ``steps`` network evaluations; :data:`SAMPLERS` are the
configurations a diffusers user would try at a fixed NFE, each snapshot is scored with all of them
and the best counts (:mod:`diffusion_lab.bench.time_to_quality`).

Why more than the default: on the cosine schedule (``squaredcos_cap_v2``, betas clipped at 0.999)
alpha_bar at t = 999 is 2.4e-9, so diffusers' default grid (``linspace``/``trailing``) starts
where the data prediction x0 = (x - sqrt(1 - ab) eps) / sqrt(ab) multiplies the network's eps
error by ~2e4; without clipping that error reaches the sample. ``thresholding=True,
sample_max_value=1`` clamps x0 to [-1, 1] (what diffusion-lab's ``clip_denoised`` does) and
``leading`` spacing starts lower instead (t = 940 at 20 steps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffusion_lab.bench.diffusers_models import _diffusers


def unet2d_like_unet_small(num_classes: int = 10, image_size: int = 8, channels: int = 1):
    """UNet2DModel shaped like conf/backbone/unet_small.yaml (32/64 channels, 2 ResNets per
    level, 4-head attention at 4x4, scale-shift time conditioning, 8 groups, dropout 0.1,
    ``num_classes + 1`` class rows, the last the null class)."""
    return _diffusers().UNet2DModel(
        sample_size=image_size, in_channels=channels, out_channels=channels, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=16, norm_num_groups=8,
        resnet_time_scale_shift="scale_shift", num_class_embeds=num_classes + 1, dropout=0.1)


class DiffusersLoop:
    """Train ``net`` on (x, y) in [-1, 1] for wall-clock budgets; EMA snapshots at each."""

    def __init__(self, net, *, num_classes: int, lr: float = 1e-3, warmup_steps: int = 200,
                 total_steps: int = 20_000, batch_size: int = 128, ema_decay: float = 0.995,
                 label_dropout: float = 0.1, beta_schedule: str = "squaredcos_cap_v2", seed: int = 0):
        d = _diffusers()
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.net, self.num_classes, self.batch_size = net, num_classes, batch_size
        self.label_dropout = label_dropout
        self.scheduler = d.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
        self.opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.95, 0.999),
                                     weight_decay=1e-6, eps=1e-8)
        self.lr = get_cosine_schedule_with_warmup(self.opt, warmup_steps, total_steps)
        self.ema = EMAModel(net.parameters(), decay=ema_decay, use_ema_warmup=True, power=0.75,
                            foreach=True)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps = 0

    def step(self, x0: torch.Tensor, y: torch.Tensor) -> float:
        g, b = self.generator, x0.shape[0]
        eps = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=g)
        drop = torch.rand(b, generator=g) < self.label_dropout
        y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        x_t = self.scheduler.add_noise(x0, eps, t)
        loss = F.mse_loss(self.net(x_t, t, class_labels=y).sample, eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.lr.step()
        self.opt.zero_grad(set_to_none=True)
        self.ema.step(self.net.parameters())
        self.steps += 1
        return loss.detach()

    def train(self, x: torch.Tensor, y: torch.Tensor, budgets: list[float],
              on_budget: Callable[[float, int, dict], None]) -> None:
        """Epochs of shuffled batches until each budget (seconds of training) passes; then
        ``on_budget(seconds, steps, ema_state)`` (its own time not counted)."""
        pending, spent = sorted(budgets), 0.0
        while pending:
            order = torch.randperm(len(x), generator=self.generator)
            for i in range(0, len(x) - self.batch_size + 1, self.batch_size):
                start = time.perf_counter()
                idx = order[i:i + self.batch_size]
                self.step(x[idx], y[idx])
                spent += time.perf_counter() - start
                while pending and spent >= pending[0]:
                    on_budget(pending.pop(0), self.steps, self.ema_state())
                if not pending:
                    return

    def ema_state(self) -> dict:
        return {k: v.clone() for k, v in zip(
            [n for n, _ in self.net.named_parameters()], self.ema.shadow_params)}


#: (name, scheduler class, options): a diffusers user's candidates at a fixed NFE on image data in
#: [-1, 1]; "clip x0" is ``thresholding`` with ``sample_max_value=1`` (x0 clamped to [-1, 1])
CLIP_X0 = {"thresholding": True, "sample_max_value": 1.0}
SAMPLERS: tuple[tuple[str, str, dict], ...] = (
    ("DPM-Solver++(2M)", "DPMSolverMultistepScheduler", {}),
    ("DPM-Solver++(2M), clip x0", "DPMSolverMultistepScheduler", CLIP_X0),
    ("DPM-Solver++(2M), leading", "DPMSolverMultistepScheduler", {"timestep_spacing": "leading"}),
    ("DPM-Solver++(2M), leading, clip x0", "DPMSolverMultistepScheduler",
     {"timestep_spacing": "leading", **CLIP_X0}),
    ("DPM-Solver++(2M), Lu lambdas, clip x0", "DPMSolverMultistepScheduler",
     {"use_lu_lambdas": True, **CLIP_X0}),
    ("DPM-Solver++(3M), leading, clip x0", "DPMSolverMultistepScheduler",
     {"solver_order": 3, "timestep_spacing": "leading", **CLIP_X0}),
    ("UniPC bh2, clip x0", "UniPCMultistepScheduler", CLIP_X0),
    ("UniPC bh2, leading, clip x0", "UniPCMultistepScheduler",
     {"timestep_spacing": "leading", **CLIP_X0}),
    ("DDIM, clip x0", "DDIMScheduler", {"clip_sample": True}),
)


@torch.no_grad()
def sample(net, train_scheduler, labels: torch.Tensor, shape, steps: int = 20, seed: int = 0,
           batch_size: int = 500, scheduler: str = "DPMSolverMultistepScheduler",
           options: dict | None = None) -> torch.Tensor:
    """diffusers' sampling loop: ``scheduler`` (options ``options``) from the training
    scheduler's config, ``steps`` evaluations, clamped to [-1, 1] at the end."""
    d = _diffusers()
    solver = getattr(d, scheduler).from_config(train_scheduler.config, **(options or {}))
    net.eval()
    out = []
    g = torch.Generator().manual_seed(seed)
    for start in range(0, len(labels), batch_size):
        y = labels[start:start + batch_size]
        x = torch.randn((len(y), *shape), generator=g)
        solver.set_timesteps(steps)
        x = x * solver.init_noise_sigma
        for t in solver.timesteps:
            eps = net(solver.scale_model_input(x, t), t.expand(len(y)), class_labels=y).sample
            x = solver.step(eps, t, x).prev_sample
        out.append(x.clamp(-1, 1))
    net.train()
    return torch.cat(out)


def cosine_total_steps(budget_s: float, seconds_per_step: float) -> int:
    """The cosine schedule's length: the steps the largest budget holds at the measured pace."""
    return max(1, math.ceil(budget_s / seconds_per_step))
