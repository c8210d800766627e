"""Denoising backbones: ``forward(x, t, cond=None) -> tensor shaped like x``.

They know nothing of diffusion; see layers.py for the shared embeddings and attention.
"""

from .dit import DiT
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
    "MLP",
    "AttentionBlock2d",
    "ClassEmbedding",
    "DiT",
    "SelfAttention",
    "TimestepEmbedder",
    "UNet",
    "timestep_embedding",
]
