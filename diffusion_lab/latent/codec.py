"""What a latent diffusion model decodes its samples with: the autoencoder, its identity (the
weights' digest, ``autoencoder/load.py``) and the measured shift and scale.

    decode(z') = D(z' / scale + shift),    encode(x) = (E(x) - shift) * scale

``facts()`` is what the diffusion checkpoint stores (``diffusion_lab_latent``); sampling rebuilds
the codec from them with :func:`codec_from_facts`, which loads the autoencoder from the stored
path (or the one the user names) and refuses, with one line, weights of another identity or a
scale other than the stored one: decoding with either gives noise, not digits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffusion_lab.autoencoder.load import load_autoencoder
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import CheckpointError


class LatentCodec:
    """Not an ``nn.Module`` on purpose: the frozen autoencoder stays out of the diffusion
    model's parameters, optimizer, EMA and state dict (the checkpoint names it instead)."""

    def __init__(self, autoencoder, identity: str, shift: Tensor, scale: Tensor, source: str,
                 options: dict | None = None, bound: float | None = None):
        self.autoencoder = autoencoder
        self.identity = identity
        self.shift = torch.as_tensor(shift, dtype=torch.float32).reshape(-1)
        self.scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        self.source = str(source)
        self.options = dict(options or {})
        # max |z'| of the scaled training latents: sampling clamps predicted latents to it, as
        # pixel models clamp x0 to [-1, 1] (unclamped, eps errors at high noise blow up)
        self.bound = None if bound is None else float(bound)

    def _affine(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return (self.shift.to(z.device).view(1, -1, 1, 1), self.scale.to(z.device).view(1, -1, 1, 1))

    @torch.no_grad()
    def decode(self, z_scaled: Tensor) -> Tensor:
        """Images in [-1, 1] from scaled latents: D(z' / scale + shift), clamped."""
        self.autoencoder.to(z_scaled.device)
        shift, scale = self._affine(z_scaled)
        return self.autoencoder.decode(z_scaled / scale + shift).clamp(-1.0, 1.0)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Scaled posterior means (E(x) - shift) * scale."""
        self.autoencoder.to(x.device)
        mean, _ = self.autoencoder.encode(x)
        shift, scale = self._affine(mean)
        return (mean - shift) * scale

    def facts(self) -> dict:
        return {"autoencoder": self.source, "identity": self.identity, "shift": self.shift.clone(),
                "scale": self.scale.clone(), "options": self.options,
                "latent_shape": list(self.autoencoder.latent_shape()), "bound": self.bound}


def _same(a, b) -> bool:
    a, b = torch.as_tensor(a, dtype=torch.float32).reshape(-1), torch.as_tensor(b, dtype=torch.float32).reshape(-1)
    if a.numel() == 1 and b.numel() > 1:
        a = a.expand_as(b)
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=0.0)


def codec_from_facts(facts: dict, path="checkpoint", autoencoder: str | None = None,
                     scale=None) -> LatentCodec:
    """The codec a latent checkpoint was trained with. ``autoencoder``: another location of the
    same weights (default: the stored path); ``scale``: must equal the stored one if given.
    CheckpointError / ConfigError (one line) on a mismatch."""
    stored_scale = facts["scale"]
    if scale is not None and not _same(scale, stored_scale):
        shown = ", ".join(f"{float(s):.4g}" for s in torch.as_tensor(stored_scale).reshape(-1))
        raise ConfigError(f"{path} was trained on latents scaled by [{shown}] (measured on its "
                          f"data); decoding with scale {scale} would give wrong images: refused")
    source = autoencoder or facts["autoencoder"]
    model, identity = load_autoencoder(source, **facts.get("options", {}))
    if identity != facts["identity"]:
        raise CheckpointError(
            f"{path} was trained on the latents of autoencoder {facts['identity']} "
            f"({facts['autoencoder']}), but {source} holds autoencoder {identity}: refused "
            "(other weights decode its samples to noise)")
    return LatentCodec(model, identity, facts["shift"], stored_scale, facts["autoencoder"],
                       facts.get("options"), facts.get("bound"))
