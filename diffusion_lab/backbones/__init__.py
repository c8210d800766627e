"""Denoising backbones: ``forward(x, t, cond=None) -> tensor shaped like x``.

They know nothing of diffusion; see layers.py for the shared embeddings and attention.
"""

from .dit import (
    DIT_PRESETS,
    DiT,
    DiT_B_2,
    DiT_B_4,
    DiT_B_8,
    DiT_L_2,
    DiT_L_4,
    DiT_L_8,
    DiT_S_2,
    DiT_S_4,
    DiT_S_8,
    DiT_XL_2,
    DiT_XL_4,
    DiT_XL_8,
)
from .layers import (
    AttentionBlock2d,
    ClassEmbedding,
    SelfAttention,
    TimestepEmbedder,
    timestep_embedding,
)
from .mlp import MLP
from .unet import UNet

__all__ = [
    "DIT_PRESETS",
    "MLP",
    "AttentionBlock2d",
    "ClassEmbedding",
    "DiT",
    "DiT_B_2",
    "DiT_B_4",
    "DiT_B_8",
    "DiT_L_2",
    "DiT_L_4",
    "DiT_L_8",
    "DiT_S_2",
    "DiT_S_4",
    "DiT_S_8",
    "DiT_XL_2",
    "DiT_XL_4",
    "DiT_XL_8",
    "SelfAttention",
    "TimestepEmbedder",
    "UNet",
    "timestep_embedding",
]
