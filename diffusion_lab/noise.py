"""Per-sample noise streams: sample i gets the same noise whatever batch or process draws it.

Each sample owns a CPU ``torch.Generator`` seeded with mix(seed, stream, index), a splitmix64 chain
(Steele et al. 2014): h <- splitmix64(h XOR part) for part in (seed, stream, index), starting from
h = 0. Each link is a bijection of the running hash, so distinct indices give distinct seeds for a
given (seed, stream), and neighbouring indices give unrelated ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["PerSampleNoise", "initial_noise", "mix_seed"]

_MASK = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def mix_seed(*parts: int) -> int:
    """A 64-bit seed from integers: h = 0; h = splitmix64(h ^ (p mod 2^64)) for each part p."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK))
    return h


def _as_index_list(indices: Sequence[int] | Tensor) -> list[int]:
    if isinstance(indices, Tensor):
        if indices.dtype.is_floating_point or indices.ndim != 1:
            raise ValueError("indices must be a 1-d integer tensor or a sequence of ints")
        return [int(i) for i in indices.tolist()]
    return [int(i) for i in indices]


class PerSampleNoise:
    """Noise callable, one generator per sample: ``noise(like)`` draws N(0, I) of ``like.shape``.

    Row b of every draw comes from the generator of ``indices[b]``; successive calls continue each
    stream. Draws are float32 on CPU, then moved to ``like``'s device and dtype. ``stream`` picks an
    independent family (e.g. 0 for x_T, 1 for the per-step noise of stochastic samplers).
    """

    def __init__(self, seed: int, indices: Sequence[int] | Tensor, stream: int = 0) -> None:
        self.seed = int(seed)
        self.stream = int(stream)
        self.indices = _as_index_list(indices)
        if not self.indices:
            raise ValueError("PerSampleNoise needs at least one index")
        self.generators = []
        for i in self.indices:
            g = torch.Generator(device="cpu")
            g.manual_seed(mix_seed(self.seed, self.stream, i))
            self.generators.append(g)

    def __len__(self) -> int:
        return len(self.indices)

    def sample(
        self,
        shape: Sequence[int],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw one N(0, I) tensor of ``shape``; shape[0] must equal the number of indices."""
        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self.indices):
            raise ValueError(f"expected a batch of {len(self.indices)} samples, got shape {shape}")
        rows = [torch.randn(shape[1:], generator=g, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=device, dtype=dtype)

    def __call__(self, like: Tensor) -> Tensor:
        return self.sample(like.shape, like.device, like.dtype)

    def __repr__(self) -> str:
        return f"PerSampleNoise(seed={self.seed}, stream={self.stream}, n={len(self.indices)})"


def initial_noise(
    shape: Sequence[int],
    seed: int = 0,
    indices: Sequence[int] | Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """z ~ N(0, I) of ``shape``: stream 0 of PerSampleNoise(seed, indices or range(shape[0]))."""
    indices = range(shape[0]) if indices is None else indices
    return PerSampleNoise(seed, indices, stream=0).sample(shape, device, dtype)
