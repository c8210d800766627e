"""Cross-attention of image tokens to a context sequence (text tokens), as latent diffusion
(Rombach et al. 2022) and Imagen (Saharia et al. 2022) condition a denoiser on a prompt:

    CrossAttn(x, c) = softmax(Q K^T / sqrt(d_h) + M) V W_o,   Q = x W_q, K = c W_k, V = c W_v,

per head, with M = -inf at the context's padding positions (``mask`` False) and 0 elsewhere,
so padding never reaches the image. The pooled context (its masked mean) is what the backbones
add to the time embedding (Imagen's pooled text embedding). Knows nothing of diffusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def masked_mean(context: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``context`` (B, L, D) over the positions where ``mask`` (B, L) is True: (B, D).
    Every row needs one True position (the text encoder's start token is never masked)."""
    weights = mask.to(context.dtype)[..., None]  # (B, L, 1)
    return (context * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class CrossAttention(nn.Module):
    """Multi-head attention of queries x (B, N, D) to keys/values from ``context`` (B, L, Dc);
    ``mask`` (B, L) bool, True = attend. The output projection starts at zero, so a block that
    adds it starts as the identity."""

    def __init__(self, dim: int, context_dim: int, num_heads: int):
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f"cross-attention: num_heads={num_heads} must divide width {dim}")
        if context_dim <= 0:
            raise ValueError(f"cross-attention needs context_dim > 0, got {context_dim}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)  # (B, h, N, d/h)
        kv = self.kv(context.to(x.dtype)).reshape(b, context.shape[1], 2, h, d // h)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, L, d/h)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class CrossAttentionBlock2d(nn.Module):
    """Residual cross-attention for feature maps: x + CrossAttn(GroupNorm(x) as HW tokens, c)."""

    takes_context = True

    def __init__(self, channels: int, context_dim: int, num_heads: int, groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = CrossAttention(channels, context_dim, num_heads)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        out = self.attn(tokens, context, mask).transpose(1, 2).reshape(b, c, h, w)
        return x + out


def check_context(context: Tensor | None, mask: Tensor | None, batch: int,
                  context_dim: int) -> None:
    """A backbone built with ``context_dim`` > 0 needs (B, L, context_dim) tokens and a (B, L)
    mask with at least one True per row; ValueError (one line) otherwise."""
    if context is None or mask is None:
        raise ValueError(f"this backbone is conditioned on a context sequence "
                         f"(context_dim={context_dim}): give context and context_mask")
    if context.dim() != 3 or context.shape[0] != batch or context.shape[2] != context_dim \
            or tuple(mask.shape) != tuple(context.shape[:2]) or mask.dtype != torch.bool:
        raise ValueError(f"context must be (B={batch}, L, {context_dim}) with a (B, L) bool mask, "
                         f"got {tuple(context.shape)} and {tuple(mask.shape)} {mask.dtype}")
