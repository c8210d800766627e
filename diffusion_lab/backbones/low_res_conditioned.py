"""A backbone conditioned on a low-resolution image by channel concatenation (SR3, Saharia et
al. 2022; Palette): ``forward(x, t, low_res) = net(concat[x, up(low_res)], t)``.

``net`` is any backbone (U-Net, DiT) built for ``2 C`` input and ``C`` output channels; the
low-resolution image (B, C, H/f, W/f) is resized to x's (H, W) by ``F.interpolate`` (bicubic,
as SR3, or nearest / bilinear) and stacked on the channel axis. Knows nothing of diffusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")


class LowResConditioned(nn.Module):
    """``forward(x (B,C,H,W), t (B,), low_res (B,C,H/f,W/f)) -> (B, C, H, W)``."""

    def __init__(self, net: nn.Module, factor: int, upsample: str = "bicubic") -> None:
        super().__init__()
        if isinstance(factor, bool) or int(factor) != factor or factor < 2:
            raise ValueError(f"the super-resolution factor must be an integer >= 2, got {factor!r}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        image_size = getattr(net, "image_size", None)
        if image_size is None:
            raise ValueError("a super-resolution backbone needs an image backbone (U-Net or DiT)")
        if image_size % factor:
            raise ValueError(f"image size {image_size} is not divisible by the factor {factor}")
        if net.in_channels != 2 * net.out_channels:
            raise ValueError(f"the network must take 2 C input channels (noisy image + low-res "
                             f"image) for C output channels, got {net.in_channels} -> "
                             f"{net.out_channels}")
        self.net = net
        self.factor = int(factor)
        self.upsample = upsample
        self.image_size = image_size
        self.in_channels = net.out_channels  # the image's channels: what is sampled

    @property
    def low_res_shape(self) -> tuple[int, int, int]:
        size = self.image_size // self.factor
        return (self.in_channels, size, size)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None or cond.dim() != 4 or tuple(cond.shape[1:]) != self.low_res_shape \
                or cond.shape[0] != x.shape[0]:
            got = "none" if cond is None else "x".join(map(str, cond.shape))
            raise ValueError(f"a super-resolution backbone needs the low-resolution images "
                             f"({x.shape[0]}x{'x'.join(map(str, self.low_res_shape))}) as its "
                             f"condition, got {got}")
        kwargs = {} if self.upsample == "nearest" else {"align_corners": False}
        up = F.interpolate(cond.to(x.dtype), size=x.shape[-2:], mode=self.upsample, **kwargs)
        return self.net(torch.cat([x, up], dim=1), t, None)
