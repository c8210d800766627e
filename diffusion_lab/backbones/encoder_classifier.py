"""A time-conditioned image classifier: the U-Net's encoder half with a pooled linear head.

As ADM's noise-aware classifier (Dhariwal & Nichol 2021, Sec. 4): input conv, ``len(channel_mult)``
levels of ``num_res_blocks`` ResBlocks (self-attention at ``attention_resolutions``) with a 2x
downsample between levels, the middle ResBlock-Attention-ResBlock, then GroupNorm-SiLU, a spatial
mean and a linear layer to ``num_classes`` logits. ``t`` enters every ResBlock through the
timestep embedding, so one network classifies inputs at every noise level.

``forward(x (B, C, H, W), t (B,)) -> logits (B, num_classes)``. Like the denoising backbones it
knows nothing of diffusion: ``t`` is a real number per sample.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AttentionBlock2d, TimestepEmbedder, resolve_heads
from .unet import EmbedSequential, ResBlock, UNet, encoder_blocks

__all__ = ["EncoderClassifier"]


class EncoderClassifier(nn.Module):
    def __init__(self, image_size: int = 8, in_channels: int = 1, num_classes: int = 10,
                 base_channels: int = 32, channel_mult: tuple[int, ...] = (1, 2),
                 num_res_blocks: int = 1, attention_resolutions: tuple[int, ...] = (),
                 num_heads: int = 4, dropout: float = 0.0, groups: int = 8):
        super().__init__()
        channel_mult = tuple(int(m) for m in channel_mult)
        attention_resolutions = tuple(int(r) for r in attention_resolutions)
        UNet._check(image_size, base_channels, channel_mult, attention_resolutions, groups)
        if int(num_classes) < 2:
            raise ValueError(f"EncoderClassifier: num_classes must be >= 2, got {num_classes}")
        self.image_size, self.in_channels, self.num_classes = image_size, in_channels, num_classes
        emb_dim = 4 * base_channels
        self.time_embed = TimestepEmbedder(base_channels, emb_dim)

        def res(cin: int, cout: int, **kw) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, dropout=dropout, groups=groups,
                            scale_shift_norm=True, **kw)

        def attn(ch: int) -> AttentionBlock2d:
            return AttentionBlock2d(ch, resolve_heads(ch, num_heads, 0), 0, groups)

        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down, _, ch, _ = encoder_blocks(res, attn, image_size, base_channels, channel_mult,
                                             num_res_blocks, attention_resolutions)
        self.middle = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))
        self.out_norm = nn.GroupNorm(groups, ch)
        self.head = nn.Linear(ch, num_classes)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_embed(t)  # (B, 4*base)
        h = self.input_conv(x)  # (B, base, H, W)
        for block in self.down:
            h = block(h, emb)  # (B, ch, H/2^l, W/2^l)
        h = self.middle(h, emb)  # (B, ch, H/2^L, W/2^L)
        h = F.silu(self.out_norm(h)).mean(dim=(2, 3))  # (B, ch)
        return self.head(h)  # (B, num_classes)
