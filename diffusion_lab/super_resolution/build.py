"""The super-resolution stage's backbone: the configured one (``backbone=...``) built for
2 C input channels (noisy image and upsampled low-resolution image; 2 C + 1 with the noise level
of ``super_resolution.aug_max`` > 0) and C output channels, without class conditioning, inside
:class:`~diffusion_lab.backbones.LowResConditioned`."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.backbones import LowResConditioned


def low_res_backbone(backbone: DictConfig, super_resolution: DictConfig) -> LowResConditioned:
    channels = int(backbone.in_channels)
    if int(backbone.get("num_classes", 0) or 0):
        raise ValueError("a super-resolution model is conditioned on the low-resolution image, "
                         "not on classes: set backbone.num_classes=0")
    level_channel = float(super_resolution.get("aug_max", 0.0) or 0.0) > 0
    net = instantiate(backbone, in_channels=2 * channels + int(level_channel),
                      out_channels=channels, _convert_="all")
    return LowResConditioned(net, super_resolution.factor, super_resolution.upsample,
                             level_channel=level_channel)
