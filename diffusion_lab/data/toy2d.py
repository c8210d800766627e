"""2-D toy distributions for fast sampler and objective experiments.

Each function returns an :class:`ArrayDataset` of ``n`` points shaped ``(n, 2)``, float32,
deterministic given ``seed`` (a NumPy ``default_rng(seed)``; the result does not depend on the
global RNG). Points are **not** clipped and there is no [-1, 1] range check.

Scaling: each noiseless shape is centred and divided by a fixed constant so that the
root-mean-square coordinate is about 1 ("unit scale"); the constants are computed analytically
or by Monte Carlo once and written down, so they do not depend on ``n``. Noise parameters are
standard deviations in these output units.

=================  =====================================================  ===========
function           shape (before noise)                                   labels
=================  =====================================================  ===========
two_moons          two interleaved half circles, centred at (0.5, 0.25),  2 (moon)
                   divided by 0.716
swiss_roll         ``t (cos t, sin t)``, ``t = 1.5 pi (1 + 2u)``,          0 (none)
                   centred at (2.0, 0.21), divided by 6.79
eight_gaussians    8 means on a circle of radius sqrt(2), isotropic std   8 (mode)
checkerboard       4x4 board with 8 filled cells on [-sqrt 3, sqrt 3]^2   0 (none)
=================  =====================================================  ===========
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion_lab.data.arrays import ArrayDataset


def _check(name: str, n: int, noise: float) -> None:
    if n < 1:
        raise ValueError(f"{name}: n must be >= 1, got {n}")
    if noise < 0 or not math.isfinite(noise):
        raise ValueError(f"{name}: noise/std must be a finite number >= 0, got {noise}")


def _points(
    name: str, points: np.ndarray, labels: np.ndarray | None, num_classes: int
) -> ArrayDataset:
    x = torch.as_tensor(points, dtype=torch.float32)
    y = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
    return ArrayDataset(x, y, num_classes=num_classes, name=name, value_range=None)


def two_moons(n: int = 20000, noise: float = 0.1, seed: int = 0) -> ArrayDataset:
    """Two interleaving half circles; label = which moon (num_classes 2)."""
    _check("two_moons", n, noise)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)  # balanced, shuffled
    t = rng.uniform(0.0, math.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    points = np.where(labels[:, None] == 0, upper, lower)
    points = (points - np.array([0.5, 0.25])) / 0.716 + noise * rng.standard_normal((n, 2))
    return _points("two_moons", points, labels, 2)


def swiss_roll(n: int = 20000, noise: float = 0.05, seed: int = 0) -> ArrayDataset:
    """A 2-D spiral ``t (cos t, sin t)`` for ``t`` in [1.5 pi, 4.5 pi]; unlabeled."""
    _check("swiss_roll", n, noise)
    rng = np.random.default_rng(seed)
    t = 1.5 * math.pi * (1.0 + 2.0 * rng.uniform(0.0, 1.0, n))
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    points = (points - np.array([2.0, 0.21])) / 6.79 + noise * rng.standard_normal((n, 2))
    return _points("swiss_roll", points, None, 0)


def eight_gaussians(n: int = 20000, std: float = 0.1, seed: int = 0) -> ArrayDataset:
    """Mixture of 8 equal Gaussians with means ``sqrt(2) (cos 2 pi k/8, sin 2 pi k/8)``.

    A circle of radius sqrt(2) has per-axis variance 1. Label = mixture component k.
    """
    _check("eight_gaussians", n, std)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, n)
    angle = 2.0 * math.pi * labels / 8.0
    means = math.sqrt(2.0) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points = means + std * rng.standard_normal((n, 2))
    return _points("eight_gaussians", points, labels, 8)


def checkerboard(n: int = 20000, seed: int = 0) -> ArrayDataset:
    """Uniform on the 8 "black" cells of a 4x4 board spanning [-sqrt 3, sqrt 3]^2; unlabeled.

    Each axis marginal is uniform on [-sqrt 3, sqrt 3], i.e. variance 1.
    """
    _check("checkerboard", n, 0.0)
    rng = np.random.default_rng(seed)
    col = rng.integers(0, 4, n)
    row = 2 * rng.integers(0, 2, n) + (col % 2)  # rows of the same parity as the column
    cell = np.stack([col, row], axis=1) + rng.uniform(0.0, 1.0, (n, 2))  # in [0, 4]^2
    points = (cell / 4.0 * 2.0 - 1.0) * math.sqrt(3.0)
    return _points("checkerboard", points, None, 0)
