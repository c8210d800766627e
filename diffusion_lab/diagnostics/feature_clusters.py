"""Mode coverage beyond class histograms: k-means clusters of classifier features.

Fit k-means (Lloyd's algorithm, k-means++ seeding) on the features of the real data; each
cluster is a mode of the data. Assign the features of generated samples to the nearest centre:

    covered = #{clusters c : n_c >= min_fraction * N_samples * p_c}

with p_c the real data's share of cluster c. The clusters are checked against the classes: the
purity of cluster c is the share of its real members in its majority class, and the classes
covered by clusters are those that are the majority class of at least one cluster.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _sq_dist(x: Tensor, centres: Tensor) -> Tensor:
    return ((x * x).sum(1, keepdim=True) - 2 * x @ centres.T + (centres * centres).sum(1)).clamp_min(0)


def kmeans(x: Tensor, k: int, *, iters: int = 50, seed: int = 0) -> Tensor:
    """Centres (k, D) of Lloyd's k-means on x (N, D), k-means++ initialisation (Arthur and
    Vassilvitskii 2007), deterministic given ``seed``."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, {len(x)}], got {k}")
    x = x.double()
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(len(x), (1,), generator=g)]
    for _ in range(1, k):
        d = _sq_dist(x, centres).min(1).values
        p = d / d.sum() if d.sum() > 0 else torch.full_like(d, 1 / len(d))
        centres = torch.cat([centres, x[torch.multinomial(p, 1, generator=g)]])
    for _ in range(iters):
        assign = _sq_dist(x, centres).argmin(1)
        new = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        new = torch.where(counts > 0, new / counts.clamp_min(1), centres)  # empty: keep centre
        if torch.allclose(new, centres):
            break
        centres = new
    return centres


def assign(x: Tensor, centres: Tensor) -> Tensor:
    """Nearest centre (N,) of each row of x."""
    return _sq_dist(x.double(), centres.double()).argmin(1)


def cluster_coverage(real: Tensor, real_labels: Tensor | None, fake: Tensor, k: int, *,
                     min_fraction: float = 0.25, seed: int = 0) -> dict:
    """Clusters of the real features covered by the generated ones (see the module docstring).

    Returns 'clusters_covered' (fraction of the k clusters), 'covered' (bool per cluster),
    'real_share' / 'fake_share' per cluster, and with labels 'purity' (mean over clusters),
    'cluster_class' (majority class per cluster) and 'classes_in_clusters' (fraction of classes
    that are the majority of some cluster)."""
    centres = kmeans(real, k, seed=seed)
    real_share = torch.bincount(assign(real, centres), minlength=k).double() / len(real)
    fake_counts = torch.bincount(assign(fake, centres), minlength=k).double()
    covered = (fake_counts >= min_fraction * len(fake) * real_share) & (fake_counts > 0)
    out = {"k": k, "clusters_covered": float(covered.double().mean()), "covered": covered.tolist(),
           "real_share": real_share.tolist(), "fake_share": (fake_counts / len(fake)).tolist(),
           "num_real": len(real), "num_samples": len(fake)}
    if real_labels is not None:
        a = assign(real, centres)
        num_classes = int(real_labels.max()) + 1
        table = torch.zeros(k, num_classes).index_put_((a, real_labels.long()),
                                                       torch.ones(len(a)), accumulate=True)
        majority = table.argmax(1)
        purity = table.max(1).values / table.sum(1).clamp_min(1)
        out.update({"purity": float(purity[table.sum(1) > 0].mean()),
                    "cluster_class": majority.tolist(),
                    "classes_in_clusters": len(set(majority.tolist())) / num_classes})
    return out
