"""Mode coverage: which classes unconditional samples fall into, according to the data classifier.

``num_samples`` unconditional samples (w = 0 with the null class for a class-conditional model,
plain samples for an unconditional one) with fixed per-sample seeds, classified by the
project's classifier of the training data. Logged:

* ``mode_coverage/histogram``: bar chart of the predicted-class counts, over the count each
  class would get with the training set's class proportions; a table (class, count, fraction,
  data_fraction);
* scalars ``mode_coverage/entropy`` (entropy of the predicted-class distribution divided by
  log K: 1 = all classes equally often, 0 = one class), ``mode_coverage/classes_covered``
  (fraction of classes receiving at least ``min_fraction`` of their expected count),
  ``mode_coverage/min_max_ratio`` (rarest over commonest class count) and
  ``mode_coverage/num_samples``.

* with ``clusters`` = k: ``mode_coverage/clusters_covered`` (share of the k k-means clusters of
  the real training images' classifier features that the samples reach, each with at least
  ``min_fraction`` of its expected share) and ``mode_coverage/cluster_purity`` (how well those
  clusters follow the classes); ``evaluation.inspection.feature_coverage``.

Needs labelled image data (the classifier); otherwise it logs why it skips. EMA weights,
global rank 0 only.
"""

from __future__ import annotations

import logging

import torch

from diffusion_lab.callbacks.unconditional_samples import UnconditionalSampleMetric
from diffusion_lab.evaluation import SampleJudge
from diffusion_lab.evaluation.inspection import feature_coverage
from diffusion_lab.loggers.media import log_bar, log_scalars, log_table
from diffusion_lab.metrics.class_scores import coverage_stats

log = logging.getLogger(__name__)


class ModeCoverage(UnconditionalSampleMetric):
    what = "mode coverage"
    min_samples = 2  # clusters and histograms need two samples at least

    def __init__(
        self,
        num_samples: int = 200,
        seed: int = 0,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
        min_step: int = 0,
        min_fraction: float = 0.25,
        batch_size: int = 500,
        cache_dir: str = ".cache",
        dataset_name: str = "data",
        clusters: int | None = 20,
    ):
        super().__init__(num_samples, seed, every_n_steps, at_train_end, min_step, batch_size)
        self.min_fraction = min_fraction
        self.cache_dir = cache_dir
        self.dataset_name = dataset_name
        self.clusters = clusters

    def make(self, trainer, module) -> None:
        # Every rank takes the same branch and draws its share; rank 0 judges and logs.
        x = self.draw(trainer, module)
        if x is None or not trainer.is_global_zero:
            return
        dm, step = trainer.datamodule, trainer.global_step
        k = dm.num_classes
        judge = SampleJudge.for_data(dm, self.cache_dir, self.dataset_name)
        counts = judge.histogram(x)
        dm = getattr(dm, "pixel_data", dm)  # a latent model's samples are decoded images
        data_fractions = torch.bincount(dm.train_set.y, minlength=k).double()
        data_fractions /= data_fractions.sum()
        stats = coverage_stats(counts, data_fractions, self.min_fraction)
        if self.clusters:
            found = feature_coverage(judge, x, dm.train_set.x, dm.train_set.y,
                                     k=min(self.clusters, len(dm.train_set)),
                                     min_fraction=self.min_fraction, seed=self.seed)
            stats["clusters_covered"] = found["clusters_covered"]
            stats["cluster_purity"] = found["cluster_purity"]
        names = dm.class_names or [str(c) for c in range(k)]
        n = stats["num_samples"]
        guided = "w=0, null class" if module.num_classes > 0 else "unconditional model"
        title = (f"classes of {n} unconditional samples ({guided}), step {step}\n"
                 f"entropy {stats['entropy']:.3f}, covered {stats['classes_covered']:.0%}, "
                 f"min/max {stats['min_max_ratio']:.2f}")
        png = log_bar(trainer, "mode_coverage/histogram", names, counts.tolist(), step,
                      "predicted class", "samples", title=title,
                      reference=(data_fractions * n).tolist(), reference_label="data proportions")
        rows = [[names[c], int(counts[c]), float(counts[c]) / n, float(data_fractions[c])]
                for c in range(k)]
        table = log_table(trainer, "mode_coverage/table",
                          ["class", "count", "fraction", "data_fraction"], rows, step)
        log_scalars(trainer, {f"mode_coverage/{name}": v for name, v in stats.items()}, step)
        log.info("mode coverage at step %d: %s", step, stats)
        self.last = {"step": step, "counts": counts.tolist(), "stats": stats,
                     "paths": {"histogram": png, "table": table}}
