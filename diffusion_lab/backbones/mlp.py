"""Residual MLP denoiser for low-dimensional point data (e.g. 2-D toy distributions).

h = Linear(x);  e = TimeMLP(sinusoids(t)) [+ ClassEmb(cond)]
each block: h += Linear(SiLU(Linear(LN(h)) + W_e SiLU(e)));  out = Linear(SiLU(LN(h))).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ClassEmbedding, TimestepEmbedder


class MLPBlock(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb_proj = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        z = self.fc1(self.norm(h)) + self.emb_proj(F.silu(emb))  # (B, hidden)
        return h + self.fc2(F.silu(z))  # (B, hidden)


class MLP(nn.Module):
    """``forward(x (B, dim), t (B,), cond (B,) | None) -> (B, dim)``.

    ``num_classes > 0`` adds a class table of ``num_classes + 1`` rows (last = null class,
    used when ``cond is None``), summed with the time embedding. ``zero_time_embedding``
    multiplies the time embedding by 0 (an ablation: the network cannot see t).
    """

    def __init__(self, dim: int = 2, hidden: int = 256, depth: int = 4,
                 time_embed_dim: int = 128, num_classes: int = 0,
                 zero_time_embedding: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"MLP: depth must be >= 1, got {depth}")
        self.in_channels, self.dim, self.image_size = dim, dim, None
        self.num_classes = num_classes
        self.time_embed = TimestepEmbedder(time_embed_dim, hidden, zero=zero_time_embedding)
        self.class_embed = ClassEmbedding(num_classes, hidden) if num_classes > 0 else None
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(MLPBlock(hidden) for _ in range(depth))
        self.out_norm = nn.LayerNorm(hidden)
        self.output = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLP: expected input (B, {self.dim}), got {tuple(x.shape)}")
        emb = self.time_embed(t)  # (B, hidden)
        if self.class_embed is not None:
            emb = emb + self.class_embed(cond, x.shape[0], x.device)  # (B, hidden)
        h = self.input(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, emb)  # (B, hidden)
        return self.output(F.silu(self.out_norm(h)))  # (B, dim)
