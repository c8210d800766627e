"""Diffusion Transformer with adaLN-Zero blocks (Peebles & Xie 2023, "Scalable Diffusion
Models with Transformers").

x (B,C,H,W) -> conv patch embedding p x p -> + fixed 2-D sin-cos positions -> N blocks
conditioned on c = emb(t) + emb(y) -> adaLN final layer -> linear to p*p*C_out -> unpatchify.
Each block: ``x += g1 * Attn(LN(x) * (1 + s1) + b1);  x += g2 * MLP(LN(x) * (1 + s2) + b2)``
with (b1, s1, g1, b2, s2, g2) = Linear(SiLU(c)) zero-initialised, so every block starts as
the identity and the (zero-initialised) final layer makes a fresh model output exactly 0.
With ``context_dim > 0`` each block also attends to a context sequence (text tokens) between
its self-attention and MLP, ``x += CrossAttn(LN(x), context)`` (PixArt-alpha, Chen et al.
2024), and the context's masked mean joins c.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .cross_attention import CrossAttention, check_context, masked_mean
from .layers import (
    ClassEmbedding,
    SelfAttention,
    TimestepEmbedder,
    check_flag,
    maybe_checkpointed,
)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]  # (B, N, D)


def sincos_pos_embed_2d(dim: int, grid: int) -> Tensor:
    """Fixed 2-D sin-cos positions (grid*grid, dim): half the channels for each axis."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)
    coords = torch.arange(grid, dtype=torch.float64)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")  # (G, G) each

    def axis(pos: Tensor) -> Tensor:
        out = pos.reshape(-1)[:, None] * omega[None]  # (G*G, D/4)
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # (G*G, D/2)

    return torch.cat([axis(gx), axis(gy)], dim=1).float()  # (G*G, D)


class DiTBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, context_dim: int = 0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden, num_heads)
        if context_dim:
            self.cross_norm = nn.LayerNorm(hidden, eps=1e-6)
            self.cross_attn = CrossAttention(hidden, context_dim, num_heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"),
                                 nn.Linear(width, hidden))
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        b1, s1, g1, b2, s2, g2 = self.adaLN(c).chunk(6, dim=1)  # each (B, D)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), b1, s1))  # (B, N, D)
        if context is not None:
            x = x + self.cross_attn(self.cross_norm(x), context, mask)  # (B, N, D)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), b2, s2))  # (B, N, D)


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch_size * patch_size * out_channels)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=1)  # (B, D) each
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, N, p*p*C_out)


class DiT(nn.Module):
    """DiT backbone ``forward(x (B,C,H,W), t (B,), cond (B,) | None) -> (B, C_out, H, W)``.

    ``C_out = out_channels or in_channels`` (the paper's models, which also predict a variance,
    have ``out_channels = 2 * in_channels``). ``num_classes > 0``: table of ``num_classes + 1``
    rows, last = null class (``cond=None``); label dropout belongs to the training loop.
    ``checkpointing`` recomputes each block's activations in backward instead of storing them.
    Sizes of the paper's presets: ``conf/backbone/dit_*.yaml``. The positional table is a frozen ``nn.Parameter`` so parameter counts match the paper.
    ``zero_time_embedding`` multiplies the time embedding by 0 (an ablation: no t reaches the blocks).
    ``context_dim > 0``: cross-attention to ``context`` (B, L, context_dim) in every block
    (``context_mask`` (B, L), True = a real token); ``forward(x, t, cond, context, context_mask)``.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 2, in_channels: int = 4,
                 out_channels: int | None = None, hidden_size: int = 1152, depth: int = 28,
                 num_heads: int = 16, mlp_ratio: float = 4.0, num_classes: int = 1000,
                 zero_time_embedding: bool = False, checkpointing: bool = False,
                 context_dim: int = 0):
        super().__init__()
        self.checkpointing = check_flag(checkpointing, "checkpointing")
        if isinstance(context_dim, bool) or int(context_dim) != context_dim or context_dim < 0:
            raise ValueError(f"DiT: context_dim must be an integer >= 0, got {context_dim!r}")
        self.context_dim = int(context_dim)
        if patch_size <= 0 or image_size % patch_size:
            raise ValueError(f"DiT: image_size={image_size} must be divisible by "
                             f"patch_size={patch_size}")
        if num_heads <= 0 or hidden_size % num_heads:
            raise ValueError(f"DiT: num_heads={num_heads} must divide hidden_size={hidden_size}")
        if hidden_size % 4:
            raise ValueError(f"DiT: hidden_size={hidden_size} must be divisible by 4 "
                             "(2-D sin-cos positions)")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.out_channels = out_channels or in_channels
        self.num_classes = num_classes
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(sincos_pos_embed_2d(hidden_size, self.grid)[None],
                                      requires_grad=False)  # (1, N, D)
        self.time_embed = TimestepEmbedder(256, hidden_size, zero=zero_time_embedding)
        self.class_embed = ClassEmbedding(num_classes, hidden_size) if num_classes > 0 else None
        self.context_embed = nn.Linear(self.context_dim, hidden_size) if self.context_dim else None
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio, self.context_dim)
                                    for _ in range(depth))
        self.final = FinalLayer(hidden_size, patch_size, self.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a Linear on flattened patches
        nn.init.zeros_(self.patch_embed.bias)
        for lin in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        if self.class_embed is not None:
            nn.init.normal_(self.class_embed.table.weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero; cross-attention starts as the identity too
            nn.init.zeros_(block.adaLN[-1].weight)
            nn.init.zeros_(block.adaLN[-1].bias)
            if self.context_dim:
                nn.init.zeros_(block.cross_attn.proj.weight)
                nn.init.zeros_(block.cross_attn.proj.bias)
        for p in (*self.final.adaLN[-1].parameters(), *self.final.linear.parameters()):
            nn.init.zeros_(p)

    def unpatchify(self, x: Tensor) -> Tensor:
        b, g, p, c = x.shape[0], self.grid, self.patch_size, self.out_channels
        x = x.reshape(b, g, g, p, p, c)  # (B, gh, gw, p, p, C)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, g * p, g * p)  # (B, C, H, W)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None,
                context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"DiT: expected {self.image_size}x{self.image_size} input, "
                             f"got {tuple(x.shape[-2:])}")
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, D)
        c = self.time_embed(t)  # (B, D)
        if self.class_embed is not None:
            c = c + self.class_embed(cond, x.shape[0], x.device)  # (B, D)
        if self.context_embed is not None:
            check_context(context, context_mask, x.shape[0], self.context_dim)
            c = c + self.context_embed(masked_mean(context, context_mask).to(c.dtype))  # (B, D)
        elif context is not None:
            raise ValueError("this backbone takes no context (built with context_dim=0)")
        for block in self.blocks:
            h = maybe_checkpointed(block, h, c, context, context_mask,
                                   enabled=self.checkpointing)  # (B, N, D)
        return self.unpatchify(self.final(h, c))  # (B, C_out, H, W)
