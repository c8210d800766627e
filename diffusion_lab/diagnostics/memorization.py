"""Memorisation: are generated samples copies of training images?

For each sample s, the distances d_1 <= d_2 to its nearest and second-nearest training images
(Euclidean, in pixel space or in a feature space). The copy criterion of Carlini et al. 2023
("Extracting training data from diffusion models") and Yoon et al. 2023 flags s when

    d_1 / d_2 < ratio_threshold   (default 1/3: much closer to one image than to any other).

An exact copy has d_1 = 0, ratio 0. Duplicated training images would hide a copy (d_2 = d_1 = 0),
so the training set is de-duplicated first: d_2 is the distance to the nearest *different* image.
"""

from __future__ import annotations

import torch
from torch import Tensor

COPY_RATIO = 1.0 / 3.0


def unique_rows(train: Tensor) -> tuple[Tensor, Tensor]:
    """(distinct rows of the (N, D) matrix, index of each distinct row's first occurrence)."""
    _, inverse = torch.unique(train, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(train), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(len(train)), reduce="amin")
    return train[first], first


@torch.no_grad()
def nearest_neighbours(queries: Tensor, train: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """(d (n, 2) distances to the two nearest distinct training rows, idx (n, 2) their indices
    into ``train``) for queries (n, ...) and training items (N, ...) of the same shape."""
    q = queries.flatten(1).double()
    distinct, first = unique_rows(train.flatten(1).double())
    if len(distinct) < 2:
        raise ValueError("the training set needs at least 2 distinct items")
    sq = (distinct * distinct).sum(1)
    ds, ids = [], []
    for block in q.split(batch_size):
        d2 = (block * block).sum(1, keepdim=True) - 2 * block @ distinct.T + sq  # (b, N')
        vals, idx = d2.clamp_min(0).topk(2, dim=1, largest=False)
        ds.append(vals.sqrt())
        ids.append(first[idx])
    return torch.cat(ds), torch.cat(ids)


def memorization_report(queries: Tensor, train: Tensor, ratio_threshold: float = COPY_RATIO) -> dict:
    """Nearest-neighbour distances, the ratio d_1/d_2 and the share of near-copies.

    Returns {'d1', 'd2', 'ratio', 'nearest' (index into train), 'copies' (bool)} tensors of
    length n and the summary 'copy_share', 'median_ratio', 'num_samples', 'threshold'."""
    d, idx = nearest_neighbours(queries, train)
    ratio = d[:, 0] / d[:, 1].clamp_min(1e-12)
    copies = ratio < ratio_threshold
    return {"d1": d[:, 0], "d2": d[:, 1], "ratio": ratio, "nearest": idx[:, 0], "copies": copies,
            "copy_share": float(copies.double().mean()), "median_ratio": float(ratio.median()),
            "num_samples": len(queries), "threshold": ratio_threshold}


def pair_images(samples: Tensor, train: Tensor, nearest: Tensor, order: Tensor | None = None,
                count: int = 16) -> Tensor:
    """(2 * count, C, H, W): rows of sample / nearest-training-image pairs, interleaved so a
    grid of 2 columns shows each pair side by side; ``order`` picks which samples (default:
    the first ``count``)."""
    pick = (order if order is not None else torch.arange(len(samples)))[:count]
    return torch.stack([samples[pick], train[nearest[pick]]], dim=1).flatten(0, 1)
