"""diffusers models in the configurations of diffusion-lab's presets, for side-by-side timing.

``unet2d_ddpm_cifar10``: diffusers' UNet2DModel as in google/ddpm-cifar10-32 (block channels
128/256/256/256, 2 layers per block, attention at 16x16 with one head, dropout 0.1): the same
35,746,307 parameters as ``conf/backbone/unet_ddpm_cifar10.yaml``. ``dit_s_2``:
DiTTransformer2DModel at the DiT-S/2 shape; diffusers gives every block its own timestep/class embedder, so it has more
parameters (39.8M vs 33.0M at 1000 classes) for nearly the same FLOPs: timed, flagged as not
parameter-matched.
"""

from __future__ import annotations


def _diffusers():
    try:
        import diffusers
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ImportError("diffusers is not installed: pip install -e '.[bench]'") from e
    return diffusers


def unet2d_ddpm_cifar10(**overrides):
    cfg = {"sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
           "block_out_channels": (128, 256, 256, 256),
           "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
           "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
           "dropout": 0.1, "attention_head_dim": 256, "norm_num_groups": 32}
    return _diffusers().UNet2DModel(**{**cfg, **overrides})


def unet2d_tiny(**overrides):
    """The match of the ``unet_tiny`` preset of scripts/benchmark.py (176,849 parameters): smoke tests."""
    cfg = {"sample_size": 8, "in_channels": 1, "out_channels": 1, "layers_per_block": 1,
           "block_out_channels": (16, 32), "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
           "up_block_types": ("AttnUpBlock2D", "UpBlock2D"), "dropout": 0.0,
           "attention_head_dim": 32, "norm_num_groups": 8}
    return _diffusers().UNet2DModel(**{**cfg, **overrides})


def dit_s_2(num_classes: int = 1000):
    return _diffusers().DiTTransformer2DModel(
        num_attention_heads=6, attention_head_dim=64, in_channels=4, out_channels=8,
        num_layers=12, sample_size=32, patch_size=2, num_embeds_ada_norm=num_classes,
        norm_type="ada_norm_zero")


def call_unet2d(net, x, t, y=None):
    return net(x, t).sample


def call_dit(net, x, t, y):
    return net(x, timestep=t, class_labels=y).sample
