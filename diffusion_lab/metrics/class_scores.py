"""Scores of the classes a classifier sees in a set of samples (no conditioning needed).

* :func:`classifier_score`: the Inception Score of Salimans et al. (2016) computed with the
  project's data classifier instead of Inception-v3,

      IS = exp( E_x KL( p(y | x) || p(y) ) ),   p(y) = E_x p(y | x),

  between 1 (every sample gets the same class distribution) and K (each sample is one class
  with certainty and the K classes are equally frequent). High when samples are both
  recognisable (confident p(y|x)) and varied (flat p(y)).
* :func:`coverage_stats`: summary numbers of the predicted-class histogram against the data's
  class proportions (normalised entropy, share of classes covered, rarest/commonest ratio).

Like the classifier FID, these are comparable only between evaluations with the same classifier
weights; the score of real held-out images (``SampleJudge.reference``) gives the scale.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["classifier_score", "coverage_stats"]


def classifier_score(probs: Tensor) -> float:
    """exp(mean_i KL(p_i || mean_j p_j)) of class probabilities ``probs`` (N, K), rows summing
    to 1 (see the module docstring)."""
    if probs.ndim != 2 or len(probs) < 1:
        raise ValueError(f"probs must be (N, K) with N >= 1, got {tuple(probs.shape)}")
    p = probs.double()
    marginal = p.mean(0, keepdim=True)
    # p log(p / marginal) with 0 log 0 = 0 (a class the sample rules out adds nothing); where
    # p > 0 the marginal is > 0 too
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(1)
    return float(kl.mean().exp())


def coverage_stats(counts: Tensor, data_fractions: Tensor, min_fraction: float = 0.25) -> dict:
    """Summary numbers of a class histogram ``counts`` (K,) against the data's class proportions:

    * ``entropy``: H(counts / N) / log K (1: all classes equally often, 0: one class);
    * ``classes_covered``: share of classes with at least ``min_fraction`` of their expected
      count N * data_fraction (and at least one sample);
    * ``min_max_ratio``: rarest over commonest class count;
    * ``num_samples``: N."""
    counts = counts.double()
    total = float(counts.sum())
    k = counts.numel()
    p = counts / total
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    expected = data_fractions.double() * total
    covered = (counts >= min_fraction * expected) & (counts > 0)
    return {
        "entropy": entropy / math.log(k) if k > 1 else 1.0,
        "classes_covered": float(covered.double().mean()),
        "min_max_ratio": float(counts.min() / counts.max()) if counts.max() > 0 else 0.0,
        "num_samples": int(total),
    }
