"""Sample-based evaluation: the one place that draws labelled samples from a model and judges
them against labelled real data. Callbacks (guidance sweep, mode coverage, sample grids, x_t
strips) and tasks (end-of-run evaluation, ``scripts/sample.py`` metrics) all build on it.

* ``samples``: ``grid_labels`` (class c in row c), ``generate_samples`` (EMA weights, sample i
  from the noise of (seed, i), any process count), ``sampler_name`` / ``describe_sampler``.
* ``judge``: ``why_not_judgeable`` (the labelled-image-data check), ``judge_if_labelled`` and
  ``SampleJudge`` (the
  project's data classifier: accuracy, class histogram, FID in its feature space against
  reference statistics cached under ``metrics.cache.reference_stats_key``).
"""

from diffusion_lab.evaluation.judge import SampleJudge, judge_if_labelled, why_not_judgeable
from diffusion_lab.evaluation.samples import (
    describe_sampler,
    generate_samples,
    grid_labels,
    sampler_name,
)

__all__ = [
    "SampleJudge",
    "describe_sampler",
    "generate_samples",
    "grid_labels",
    "judge_if_labelled",
    "sampler_name",
    "why_not_judgeable",
]
