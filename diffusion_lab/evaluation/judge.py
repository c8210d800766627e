"""Judging generated images with the project's classifier of the real, labelled data.

* accuracy: the fraction of samples the classifier assigns to the class they were generated for;
* FID: Fréchet distance between the classifier's penultimate features of the samples and of the
  real training images, with its bootstrap standard deviation over the samples (how much
  another draw of as many samples would move it); the real statistics are computed once per
  (dataset, resolution, classifier weights) and cached (``metrics.cache.reference_stats_key``
  with the features' ``identity``), so every evaluation of every run on that data shares them;
* KID in the same features (``metrics.fid.kid_from_features``): unbiased in the sample count,
  so evaluations of a few hundred samples compare fairly where FID's bias would not;
* class histogram: how often each class is predicted (mode coverage);
* unconditional samples (:meth:`SampleJudge.unconditional`): FID, the classifier's Inception
  Score and the class histogram against the data's class proportions
  (``metrics.class_scores``);
* confusion: which class the samples drawn for each class are seen as (per-class accuracy,
  and where one class leaks into another).

Numbers are comparable only between evaluations that use the same classifier weights.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from diffusion_lab.metrics.cache import cached_reference_stats, reference_stats_key
from diffusion_lab.metrics.class_scores import classifier_score, coverage_stats
from diffusion_lab.metrics.classifier import (
    class_histogram,
    classifier_accuracy,
    confusion_matrix,
    data_classifier,
    predict_proba,
)
from diffusion_lab.metrics.features import ClassifierFeatures
from diffusion_lab.metrics.fid import (
    FeatureStats,
    bootstrap_fid_sd,
    extract_features,
    fid_from_stats,
    kid_from_features,
    stats_from_images,
)


def why_not_judgeable(datamodule, module=None) -> str:
    """Why samples of this data (and, if given, this model) cannot be judged by the data
    classifier; "" when they can. Needs labelled image data; class-conditional accuracy
    also needs a class-conditional ``module``."""
    if module is not None and module.num_classes == 0:
        return "the model is unconditional (class-conditional samples need class labels)"
    if datamodule is None:
        return "no datamodule attached to the trainer"
    if datamodule.num_classes == 0:
        return "the data has no labels, so there is no classifier to judge samples"
    if len(datamodule.shape) != 3:
        return f"the classifier needs image data, got samples shaped {tuple(datamodule.shape)}"
    return ""


class SampleJudge:
    """Scores images (B, C, H, W) in [-1, 1] with a classifier of the real data ``real_x``.

    The reference statistics are read from (or written to) ``cache_dir`` on first use of
    :meth:`fid`, so a judge used only for accuracy or histograms never computes them."""

    def __init__(self, classifier, real_x: Tensor, *, cache_dir: str | os.PathLike,
                 dataset_name: str, num_classes: int, val=None, real_y: Tensor | None = None):
        self.classifier = classifier
        self.real_y = real_y
        self.features = ClassifierFeatures(classifier)
        self.real_x = real_x
        self.real_count = len(real_x)
        self.num_classes = num_classes
        self.cache_dir = cache_dir
        self.key = reference_stats_key(dataset_name, real_x.shape[-1], self.features.identity)
        self.val = val
        self._real: FeatureStats | None = None
        self._real_features: Tensor | None = None

    @classmethod
    def for_data(cls, datamodule, cache_dir: str | os.PathLike, dataset_name: str) -> SampleJudge:
        """The judge of a labelled image datamodule: its cached classifier (trained once per
        dataset), FID against its training split, reliability on its validation split.
        A latent datamodule is judged by its images (``pixel_data``): samples are decoded."""
        datamodule = getattr(datamodule, "pixel_data", datamodule)
        reason = why_not_judgeable(datamodule)
        if reason:
            raise ValueError(f"cannot judge samples: {reason}")
        return cls(data_classifier(datamodule, cache_dir, dataset_name),
                   datamodule.train_set.x, cache_dir=cache_dir, dataset_name=dataset_name,
                   num_classes=datamodule.num_classes, val=datamodule.val_set,
                   real_y=datamodule.train_set.y)

    @property
    def real_stats(self) -> FeatureStats:
        """Feature mean and covariance of the real images (cached on disk)."""
        if self._real is None:
            self._real = cached_reference_stats(
                self.cache_dir, self.key,
                lambda: stats_from_images(self.features, self.real_x,
                                          progress="reference statistics"))
        return self._real

    def kid(self, features: Tensor) -> dict:
        """KID of sample features against the real training images' (extracted once per judge),
        100 subsets of up to 1,000 on each side (seed 0)."""
        if self._real_features is None:
            self._real_features = extract_features(self.features, self.real_x)
        kid = kid_from_features(self._real_features, features)
        return {"kid_classifier": kid["kid"], "kid_classifier_std": kid["kid_std"],
                "kid_subset_size": kid["kid_subset_size"]}

    def accuracy(self, x: Tensor, labels: Tensor) -> float:
        return classifier_accuracy(self.classifier, x, labels)

    def fid(self, x: Tensor) -> float:
        return fid_from_stats(stats_from_images(self.features, x), self.real_stats)

    def confusion(self, x: Tensor, labels: Tensor) -> Tensor:
        """(classes, classes) counts: row = the class a sample was drawn for, column = the class
        the classifier sees (``metrics.classifier.confusion_matrix``)."""
        return confusion_matrix(self.classifier, x, labels, self.num_classes)

    def histogram(self, x: Tensor) -> Tensor:
        """Predicted-class counts (num_classes,) int64; sums to ``len(x)``."""
        return class_histogram(self.classifier, x, self.num_classes)

    def sweep(self, samples: dict[float, Tensor], labels: Tensor) -> dict[float, tuple]:
        """{w: (accuracy, fid, x)} for samples {w: x} drawn with the same ``labels``."""
        return {w: (self.accuracy(x, labels), self.fid(x), x) for w, x in samples.items()}

    def reference(self) -> dict:
        """The judge's own reliability (accuracy on held-out real images) and the FID floor of
        held-out real images; {} without a validation split."""
        if self.val is None:
            return {}
        return {
            "classifier_val_accuracy": self.accuracy(self.val.x, self.val.y),
            "classifier_val_count": len(self.val),
            "fid_classifier_val_vs_train": self.fid(self.val.x),
            "fid_val_count": len(self.val),
            # the Inception Score (classifier's) that real held-out images get: its scale
            "classifier_score_val": classifier_score(predict_proba(self.classifier, self.val.x)),
        }

    @torch.no_grad()
    def __call__(self, x: Tensor, labels: Tensor, guidance_scale: float) -> dict:
        """Accuracy and FID of class-conditional samples drawn at ``guidance_scale``, beside
        the sample counts they were computed from."""
        w = guidance_scale
        features = extract_features(self.features, x)
        acc = self.accuracy(x, labels)
        fid = fid_from_stats(FeatureStats.from_features(features), self.real_stats)
        return {
            "eval_guidance_scale": w,
            "sample_accuracy": acc,
            f"sample_accuracy_w{w:g}": acc,
            "sample_count": len(x),
            "fid_classifier": fid,
            f"fid_classifier_w{w:g}": fid,
            # how much another draw of as many samples would move it (bootstrap, 100 resamples)
            "fid_classifier_bootstrap_sd": bootstrap_fid_sd(features, self.real_stats),
            "fid_real_count": self.real_count,
            **self.kid(features),
        }

    @torch.no_grad()
    def unconditional(self, x: Tensor, min_fraction: float = 0.25) -> dict:
        """FID (with its bootstrap spread), the classifier's Inception Score and the predicted-class
        histogram of samples drawn without a class, beside the sample counts; ``class_counts``
        against ``data_class_fractions`` (the training split's class proportions)."""
        features = extract_features(self.features, x)
        probs = predict_proba(self.classifier, x)
        counts = torch.bincount(probs.argmax(1), minlength=self.num_classes)
        if self.real_y is not None:
            fractions = torch.bincount(self.real_y.cpu(), minlength=self.num_classes).double()
            fractions /= fractions.sum()
        else:  # no labels kept: proportions taken as equal
            fractions = torch.full((self.num_classes,), 1.0 / self.num_classes, dtype=torch.double)
        coverage = coverage_stats(counts, fractions, min_fraction)
        return {
            "sample_count": len(x),
            "fid_classifier": fid_from_stats(FeatureStats.from_features(features), self.real_stats),
            "fid_classifier_bootstrap_sd": bootstrap_fid_sd(features, self.real_stats),
            "fid_real_count": self.real_count,
            **self.kid(features),
            "classifier_score": classifier_score(probs),
            "class_entropy": coverage["entropy"],
            "classes_covered": coverage["classes_covered"],
            "class_min_max_ratio": coverage["min_max_ratio"],
            "class_counts": counts.tolist(),
            "data_class_fractions": fractions.tolist(),
        }


def judge_if_labelled(datamodule, cache_dir: str | os.PathLike, dataset_name: str) -> SampleJudge | None:
    """:meth:`SampleJudge.for_data` of ``datamodule``, or None where its data cannot be judged
    (unlabelled or not images: :func:`why_not_judgeable`)."""
    if why_not_judgeable(datamodule):
        return None
    return SampleJudge.for_data(datamodule, cache_dir, dataset_name)
