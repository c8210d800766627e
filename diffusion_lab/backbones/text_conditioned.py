"""A backbone conditioned on a prompt: ``forward(x, t, tokens) = net(x, t, context=E(tokens))``
with E a :class:`~diffusion_lab.backbones.text_encoder.TextEncoder` trained with ``net``, a U-Net
or DiT built with ``context_dim`` = E's width (cross-attention to the prompt's tokens, pooled
prompt added to the time embedding). ``tokens`` all padding (or None) is the empty prompt, the
null condition of classifier-free guidance. Knows nothing of diffusion.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffusion_lab.text.tokenizer import PAD_ID

from .text_encoder import TextEncoder


class TextConditioned(nn.Module):
    """``forward(x (B,C,H,W), t (B,), tokens (B, L) long | None) -> (B, C, H, W)``."""

    def __init__(self, net: nn.Module, encoder: TextEncoder) -> None:
        super().__init__()
        if getattr(net, "image_size", None) is None:
            raise ValueError("a text-conditioned backbone needs an image backbone (U-Net or DiT)")
        if getattr(net, "context_dim", 0) != encoder.dim:
            raise ValueError(f"the network's context_dim ({getattr(net, 'context_dim', 0)}) must "
                             f"be the text encoder's width ({encoder.dim})")
        if getattr(net, "num_classes", 0):
            raise ValueError("a text-conditioned backbone takes no class labels (num_classes=0)")
        self.net, self.encoder = net, encoder
        self.image_size, self.in_channels = net.image_size, net.in_channels
        self.out_channels = net.out_channels
        self.max_length = encoder.max_length

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:  # the empty prompt
            cond = torch.full((x.shape[0], self.max_length), PAD_ID, dtype=torch.long,
                              device=x.device)
        if cond.dim() != 2 or cond.shape[0] != x.shape[0]:
            raise ValueError(f"a text-conditioned backbone needs ({x.shape[0]}, "
                             f"{self.max_length}) token ids as its condition, got "
                             f"{tuple(cond.shape)}")
        context, mask = self.encoder(cond)
        return self.net(x, t, None, context=context, context_mask=mask)
