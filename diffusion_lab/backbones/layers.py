"""Pieces shared by the backbones: timestep and class embeddings, self-attention.

Nothing here knows about diffusion; ``t`` is just a real number per sample that is
embedded with the transformer sinusoids (Vaswani et al. 2017), as in DDPM
(Ho et al. 2020) and DiT (Peebles & Xie 2023):

    emb(t)_i        = cos(t * f_i),   emb(t)_{i + d/2} = sin(t * f_i),
    f_i             = max_period ** (-i / (d/2)),   i = 0 .. d/2 - 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: (B,) -> (B, dim), float32."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )  # (half,)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))  # (B, dim)
    return emb


class TimestepEmbedder(nn.Module):
    """t -> sinusoids(freq_dim) -> Linear -> SiLU -> Linear, giving (B, out_dim).

    ``zero=True`` multiplies the embedding by 0 (an ablation: the network cannot see t)."""

    def __init__(self, freq_dim: int, out_dim: int, max_period: float = 10000.0,
                 zero: bool = False):
        super().__init__()
        self.zero = bool(zero)
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        freq = timestep_embedding(t, self.freq_dim, self.max_period)  # (B, freq_dim)
        emb = self.mlp(freq.to(self.mlp[0].weight.dtype))  # (B, out_dim)
        return emb * 0.0 if self.zero else emb


class ClassEmbedding(nn.Module):
    """Class-id table with one extra row, ``num_classes``, the null class used by
    classifier-free guidance (Ho & Salimans 2022). ``cond=None`` means the null class."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"ClassEmbedding needs num_classes > 0, got {num_classes}")
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, cond: Tensor | None, batch_size: int, device: torch.device) -> Tensor:
        if cond is None:
            cond = torch.full((batch_size,), self.num_classes, dtype=torch.long, device=device)
        return self.table(cond)  # (B, dim)


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, D) on F.scaled_dot_product_attention."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f"attention: num_heads={num_heads} must divide width {dim}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)  # (B,N,3,h,d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d/h)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d/h)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


def resolve_heads(channels: int, num_heads: int, head_channels: int) -> int:
    """Number of heads: ``channels // head_channels`` if head_channels > 0, else num_heads."""
    if head_channels > 0:
        if channels % head_channels:
            raise ValueError(
                f"attention: head_channels={head_channels} must divide width {channels}"
            )
        return channels // head_channels
    if num_heads <= 0 or channels % num_heads:
        raise ValueError(f"attention: num_heads={num_heads} must divide width {channels}")
    return num_heads


class AttentionBlock2d(nn.Module):
    """Residual spatial self-attention for feature maps: x + proj(attn(GroupNorm(x))).

    The output projection is zero-initialised so the block starts as the identity
    (improved-diffusion, Nichol & Dhariwal 2021)."""

    def __init__(self, channels: int, num_heads: int = 1, head_channels: int = 0,
                 groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = SelfAttention(channels, resolve_heads(channels, num_heads, head_channels))
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.attn.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        out = self.attn(tokens).transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + out
