"""Exponential moving average of a network's weights.

theta_ema <- d_k * theta_ema + (1 - d_k) * theta, with the warm-up
d_k = min(decay, (1 + k) / (10 + k)) at update k (as in the DDPM/ADM code), so
the average is not dominated by the random initialisation early in training.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Holds a frozen copy of ``model`` and averages ``model``'s weights into it.

    The copy is a submodule, so it travels in the LightningModule's state_dict
    (checkpoints, resume). Updates are deterministic functions of the weights, so
    under DDP (where every rank holds the same weights after each optimizer step)
    every rank keeps the same average.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        k = int(self.num_updates)
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """theta_ema <- d theta_ema + (1 - d) theta; buffers are copied."""
        d = self.current_decay()
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def train(self, mode: bool = True):
        # The averaged copy always runs in eval mode (no dropout).
        super().train(mode)
        self.model.eval()
        return self
