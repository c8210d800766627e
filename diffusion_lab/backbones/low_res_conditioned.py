"""A backbone conditioned on a low-resolution image by channel concatenation (SR3, Saharia et
al. 2022; Palette): ``forward(x, t, low_res) = net(concat[x, up(low_res)], t)``.

``net`` is any backbone (U-Net, DiT) built for ``2 C`` input and ``C`` output channels; the
low-resolution image (B, C, H/f, W/f) is resized to x's (H, W) by ``F.interpolate`` (bicubic,
as SR3, or nearest / bilinear) and stacked on the channel axis.

With ``level_channel`` the condition also carries one number per image, the noise level s of a
noise-augmented low-resolution image (cascaded diffusion): the condition is then
``[low_res, s 1]`` (B, C + 1, H/f, W/f), built by :meth:`LowResConditioned.condition`, and the
network (``2 C + 1`` input channels) sees s as a constant channel. Knows nothing of diffusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")


class LowResConditioned(nn.Module):
    """``forward(x (B,C,H,W), t (B,), low_res (B,C,H/f,W/f)) -> (B, C, H, W)``."""

    def __init__(self, net: nn.Module, factor: int, upsample: str = "bicubic",
                 level_channel: bool = False) -> None:
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
        extra = int(bool(level_channel))
        if net.in_channels != 2 * net.out_channels + extra:
            what = "2 C + 1 input channels (noisy image + low-res image + its noise level)" \
                if extra else "2 C input channels (noisy image + low-res image)"
            raise ValueError(f"the network must take {what} for C output channels, got "
                             f"{net.in_channels} -> {net.out_channels}")
        self.net = net
        self.level_channel = bool(level_channel)
        self.factor = int(factor)
        self.upsample = upsample
        self.image_size = image_size
        self.in_channels = net.out_channels  # the image's channels: what is sampled

    @property
    def low_res_shape(self) -> tuple[int, int, int]:
        size = self.image_size // self.factor
        return (self.in_channels, size, size)

    @property
    def cond_shape(self) -> tuple[int, int, int]:
        """The condition's shape per image: the low-resolution image (and its level channel)."""
        c, h, w = self.low_res_shape
        return (c + int(self.level_channel), h, w)

    @staticmethod
    def condition(low_res: Tensor, level: Tensor) -> Tensor:
        """``[low_res, s 1]``: the condition of a ``level_channel`` backbone, s (B,) per image."""
        plane = level.to(low_res.dtype).reshape(-1, 1, 1, 1).expand(
            low_res.shape[0], 1, *low_res.shape[-2:])
        return torch.cat([low_res, plane], dim=1)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None or cond.dim() != 4 or tuple(cond.shape[1:]) != self.cond_shape \
                or cond.shape[0] != x.shape[0]:
            got = "none" if cond is None else "x".join(map(str, cond.shape))
            what = "and their noise levels " if self.level_channel else ""
            raise ValueError(f"a super-resolution backbone needs the low-resolution images "
                             f"{what}({x.shape[0]}x{'x'.join(map(str, self.cond_shape))}) as its "
                             f"condition, got {got}")
        channels = self.low_res_shape[0]
        kwargs = {} if self.upsample == "nearest" else {"align_corners": False}
        up = F.interpolate(cond[:, :channels].to(x.dtype), size=x.shape[-2:], mode=self.upsample,
                           **kwargs)
        parts = [x, up]
        if self.level_channel:  # one constant plane per image
            parts.append(cond[:, channels:, :1, :1].to(x.dtype).expand(-1, -1, *x.shape[-2:]))
        return self.net(torch.cat(parts, dim=1), t, None)
