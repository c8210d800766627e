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

    def decay_tensor(self) -> torch.Tensor:
        """d_k as a 0-d float32 tensor computed where ``num_updates`` lives (no host read)."""
        k = self.num_updates.to(torch.float32)
        d = torch.full_like(k, self.decay)
        return torch.minimum(d, (1 + k) / (10 + k)) if self.warmup else d

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """theta_ema <- d theta_ema + (1 - d) theta (one ``_foreach_lerp_`` over all weights);
        buffers are copied. The decay stays a device tensor, so the update never waits for the
        device (a CUDA step is not synchronised with the host here)."""
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        weight = 1.0 - self.decay_tensor()
        dtypes = {p.dtype for p in ema_params}
        if len(dtypes) == 1:
            torch._foreach_lerp_(ema_params, params, weight.to(dtypes.pop()))
        else:  # mixed precisions: one group per dtype
            for dtype in dtypes:
                group = [(e, p) for e, p in zip(ema_params, params) if e.dtype == dtype]
                torch._foreach_lerp_([e for e, _ in group], [p for _, p in group], weight.to(dtype))
        buffers = list(self.model.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def train(self, mode: bool = True):
        # The averaged copy always runs in eval mode (no dropout).
        super().train(mode)
        self.model.eval()
        return self
