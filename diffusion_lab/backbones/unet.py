"""DDPM / ADM U-Net (Ho et al. 2020; Nichol & Dhariwal 2021; Dhariwal & Nichol 2021).

Encoder of ``len(channel_mult)`` levels, each ``num_res_blocks`` ResBlocks (optionally
followed by self-attention) and a 2x downsample except at the last level; a middle
ResBlock-Attention-ResBlock; a mirrored decoder of ``num_res_blocks + 1`` ResBlocks per
level fed by skip connections, with nearest-neighbour 2x upsampling + conv.
The timestep embedding (plus class embedding) enters every ResBlock, either additively
(DDPM: ``h + W e``) or as adaptive GroupNorm (ADM: ``GN(h) * (1 + s) + b``).
With ``context_dim > 0`` every self-attention is followed by cross-attention to a context
sequence (text tokens, latent diffusion) and the context's masked mean is added to the
embedding (Imagen's pooled text embedding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cross_attention import CrossAttentionBlock2d, check_context, masked_mean
from .layers import (
    AttentionBlock2d,
    ClassEmbedding,
    TimestepEmbedder,
    check_flag,
    maybe_checkpointed,
    resolve_heads,
)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GN-SiLU-[resample]-conv, + embedding, GN-SiLU-dropout-conv(zero init), + skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float, groups: int,
                 scale_shift_norm: bool, up: bool = False, down: bool = False):
        super().__init__()
        self.scale_shift_norm = scale_shift_norm
        self.up, self.down = up, down
        self.in_norm = nn.GroupNorm(groups, in_ch)
        self.in_conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch if scale_shift_norm else out_ch)
        self.out_norm = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = F.silu(self.in_norm(x))  # (B, Cin, H, W)
        h, x = self._resample(h), self._resample(x)  # (B, Cin, H', W')
        h = self.in_conv(h)  # (B, Cout, H', W')
        e = self.emb_proj(F.silu(emb))[:, :, None, None]  # (B, Cout or 2*Cout, 1, 1)
        if self.scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        h = self.out_conv(self.dropout(F.silu(h)))  # (B, Cout, H', W')
        return self.skip(x) + h


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class EmbedSequential(nn.Sequential):
    """Sequential that hands the embedding to the ResBlocks it holds, and the context (tokens
    and mask) to its cross-attention blocks."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None = None,  # type: ignore[override]
                mask: Tensor | None = None) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock | EmbedSequential):
                x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x, emb, context, mask)
            elif getattr(layer, "takes_context", False):
                x = layer(x, context, mask)
            else:
                x = layer(x)
        return x


def encoder_blocks(res: Callable[..., ResBlock], attn: Callable[[int], nn.Module], image_size: int,
                   base_channels: int, channel_mult: tuple[int, ...], num_res_blocks: int,
                   attention_resolutions: tuple[int, ...], resblock_updown: bool = False,
                   ) -> tuple[nn.ModuleList, list[int], int, int]:
    """The U-Net's encoder after its input conv: per level ``num_res_blocks`` ResBlocks
    ``res(cin, cout)`` (each followed by ``attn(ch)`` at ``attention_resolutions``), and a 2x
    downsample between levels. Returns (blocks, the channels of every skip connection, the
    last channel count, the last feature-map size)."""
    blocks = nn.ModuleList()
    skips, ch, size, last = [base_channels], base_channels, image_size, len(channel_mult) - 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            layers = [res(ch, mult * base_channels)]
            ch = mult * base_channels
            if size in attention_resolutions:
                layers.append(attn(ch))
            blocks.append(EmbedSequential(*layers))
            skips.append(ch)
        if level != last:
            blocks.append(EmbedSequential(res(ch, ch, down=True) if resblock_updown
                                          else Downsample(ch)))
            skips.append(ch)
            size //= 2
    return blocks, skips, ch, size


class UNet(nn.Module):
    """U-Net backbone ``forward(x (B,C,H,W), t (B,), cond (B,) | None) -> (B, out_channels, H, W)``.

    ``num_classes > 0`` adds a class table of ``num_classes + 1`` rows (last = null class,
    used when ``cond is None``). ``head_channels > 0`` overrides ``num_heads``.
    ``resblock_updown`` resamples inside ResBlocks (ADM) instead of conv down/upsampling.
    ``zero_time_embedding`` multiplies the timestep embedding by 0 (an ablation: the network
    cannot see t; the class embedding still enters).
    ``checkpointing`` recomputes each block's activations in backward instead of storing them
    (less memory, about one more forward of time).
    ``context_dim > 0``: cross-attention to ``context`` (B, L, context_dim) after every
    self-attention (``context_mask`` (B, L), True = a real token), pooled context added to the
    embedding; ``forward(x, t, cond, context, context_mask)``.
    """

    def __init__(self, image_size: int = 32, in_channels: int = 3, out_channels: int | None = None,
                 base_channels: int = 128, channel_mult: tuple[int, ...] = (1, 2, 2, 2),
                 num_res_blocks: int = 2, attention_resolutions: tuple[int, ...] = (16,),
                 num_heads: int = 1, head_channels: int = 0, dropout: float = 0.1,
                 num_classes: int = 0, scale_shift_norm: bool = True,
                 resblock_updown: bool = False, groups: int = 32,
                 zero_time_embedding: bool = False, checkpointing: bool = False,
                 context_dim: int = 0):
        super().__init__()
        self.checkpointing = check_flag(checkpointing, "checkpointing")
        if isinstance(context_dim, bool) or int(context_dim) != context_dim or context_dim < 0:
            raise ValueError(f"UNet: context_dim must be an integer >= 0, got {context_dim!r}")
        self.context_dim = int(context_dim)
        channel_mult = tuple(int(m) for m in channel_mult)
        attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self._check(image_size, base_channels, channel_mult, attention_resolutions, groups)
        self.image_size, self.in_channels = image_size, in_channels
        self.out_channels = out_channels or in_channels
        self.num_classes = num_classes
        emb_dim = 4 * base_channels
        self.time_embed = TimestepEmbedder(base_channels, emb_dim, zero=zero_time_embedding)
        self.class_embed = ClassEmbedding(num_classes, emb_dim) if num_classes > 0 else None
        self.context_embed = nn.Linear(self.context_dim, emb_dim) if self.context_dim else None

        def res(cin: int, cout: int, **kw) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, dropout=dropout, groups=groups,
                            scale_shift_norm=scale_shift_norm, **kw)

        def attn(ch: int) -> nn.Module:
            heads = resolve_heads(ch, num_heads, head_channels)
            block = AttentionBlock2d(ch, heads, 0, groups)
            if not self.context_dim:
                return block
            return EmbedSequential(block, CrossAttentionBlock2d(ch, self.context_dim, heads, groups))

        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down, skips, ch, size = encoder_blocks(
            res, attn, image_size, base_channels, channel_mult, num_res_blocks,
            attention_resolutions, resblock_updown)
        self.middle = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), mult * base_channels)]
                ch = mult * base_channels
                if size in attention_resolutions:
                    layers.append(attn(ch))
                if level != 0 and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch))
                    size *= 2
                self.up.append(EmbedSequential(*layers))
        self.out_norm = nn.GroupNorm(groups, ch)
        self.out_conv = _zero(nn.Conv2d(ch, self.out_channels, 3, padding=1))

    @staticmethod
    def _check(image_size: int, base: int, mult: tuple[int, ...], attn_res: tuple[int, ...],
               groups: int) -> None:
        if not mult:
            raise ValueError("UNet: channel_mult must have at least one level")
        factor = 2 ** (len(mult) - 1)
        if image_size % factor:
            raise ValueError(f"UNet: image_size={image_size} must be divisible by "
                             f"2**(levels-1)={factor} for channel_mult={mult}")
        bad = [base * m for m in mult if (base * m) % groups]
        if groups <= 0 or bad:
            raise ValueError(f"UNet: groups={groups} must divide every width, not {bad or base}")
        sizes = {image_size // 2**i for i in range(len(mult))}
        missing = sorted(set(attn_res) - sizes)
        if missing:
            raise ValueError(f"UNet: attention_resolutions {missing} not among the feature-map "
                             f"sizes {sorted(sizes, reverse=True)}")

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None,
                context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        emb = self.time_embed(t)  # (B, 4*base)
        if self.class_embed is not None:
            emb = emb + self.class_embed(cond, x.shape[0], x.device)  # (B, 4*base)
        if self.context_embed is not None:
            check_context(context, context_mask, x.shape[0], self.context_dim)
            emb = emb + self.context_embed(masked_mean(context, context_mask).to(emb.dtype))
        elif context is not None:
            raise ValueError("this backbone takes no context (built with context_dim=0)")
        h = self.input_conv(x)  # (B, base, H, W)
        hs = [h]
        ckpt, ctx = self.checkpointing, (context, context_mask)
        for block in self.down:
            h = maybe_checkpointed(block, h, emb, *ctx, enabled=ckpt)  # (B, ch, H/2^l, W/2^l)
            hs.append(h)
        h = maybe_checkpointed(self.middle, h, emb, *ctx, enabled=ckpt)  # (B, ch, H/2^L, W/2^L)
        for block in self.up:
            h = maybe_checkpointed(block, torch.cat([h, hs.pop()], dim=1), emb, *ctx,
                                   enabled=ckpt)  # (B, ch, ., .)
        return self.out_conv(F.silu(self.out_norm(h)))  # (B, out_channels, H, W)

