"""Denoising backbones: ``forward(x, t, cond=None) -> tensor shaped like x``.

They know nothing of diffusion; see layers.py for the shared embeddings and attention.
``EncoderClassifier`` (``forward(x, t) -> logits``) is the time-conditioned classifier of
classifier guidance, built from the U-Net's encoder blocks. ``LowResConditioned`` wraps a
backbone to take a low-resolution image as its condition (super-resolution).
"""

from .dit import DiT
from .encoder_classifier import EncoderClassifier
from .layers import (
    AttentionBlock2d,
    ClassEmbedding,
    SelfAttention,
    TimestepEmbedder,
    timestep_embedding,
)
from .low_res_conditioned import LowResConditioned
from .mlp import MLP
from .unet import UNet

__all__ = [
    "MLP",
    "AttentionBlock2d",
    "ClassEmbedding",
    "DiT",
    "EncoderClassifier",
    "LowResConditioned",
    "SelfAttention",
    "TimestepEmbedder",
    "UNet",
    "timestep_embedding",
]
