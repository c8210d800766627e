"""A small transformer text encoder trained with the denoiser (latent diffusion's text-to-image
models on LAION-400M train theirs jointly, Rombach et al. 2022; Imagen freezes a pretrained T5).

    tokens (B, L) ids, 0 = padding  ->  [s; E[tokens] + P]  ->  pre-norm transformer layers with
    padding masked  ->  LayerNorm  ->  context (B, L + 1, D), mask (B, L + 1)

``s`` is a learned start vector at position 0, never masked: the empty prompt (all padding, the
null condition of classifier-free guidance) is the start vector alone, so every row has one
position to attend to. Knows nothing of diffusion.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffusion_lab.text.tokenizer import PAD_ID  # the tokenizer's padding id, never attended


class TextEncoder(nn.Module):
    """``forward(tokens (B, L) long) -> (context (B, L + 1, dim), mask (B, L + 1) bool)``."""

    def __init__(self, vocab_size: int, max_length: int, dim: int = 64, depth: int = 2,
                 num_heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        for name, value, low in (("vocab_size", vocab_size, 2), ("max_length", max_length, 1),
                                 ("dim", dim, 1), ("depth", depth, 0), ("num_heads", num_heads, 1)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"text encoder: {name} must be an integer >= {low}, got {value!r}")
        if dim % num_heads:
            raise ValueError(f"text encoder: num_heads={num_heads} must divide dim={dim}")
        self.vocab_size, self.max_length, self.dim = int(vocab_size), int(max_length), int(dim)
        self.embed = nn.Embedding(self.vocab_size, self.dim, padding_idx=PAD_ID)
        self.start = nn.Parameter(torch.randn(1, 1, self.dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, self.max_length + 1, self.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(self.dim, num_heads, int(self.dim * mlp_ratio),
                                           dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, int(depth), enable_nested_tensor=False) \
            if depth else None
        self.norm = nn.LayerNorm(self.dim)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        if tokens.dim() != 2 or tokens.shape[1] != self.max_length or tokens.dtype != torch.long:
            raise ValueError(f"the text encoder takes (B, {self.max_length}) token ids, got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        b = tokens.shape[0]
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=tokens.device),
                          tokens != PAD_ID], dim=1)  # (B, L + 1), True = a real position
        h = torch.cat([self.start.expand(b, -1, -1), self.embed(tokens)], dim=1) + self.pos
        if self.layers is not None:
            h = self.layers(h, src_key_padding_mask=~mask)  # (B, L + 1, D)
        return self.norm(h), mask
