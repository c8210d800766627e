"""What a practitioner inspects in a trained diffusion model, as pure torch functions.

* :mod:`time_embedding`: does the network's output depend on the timestep at all?
* :mod:`memorization`: are samples copies of training images (nearest-neighbour ratio test)?
* :mod:`schedule_record`: the schedule a checkpoint was trained with, by value, and agreement checks.
* :mod:`feature_clusters`: mode coverage by k-means clusters of classifier features.

Nothing here knows Lightning or Hydra; callbacks and tasks call these functions.
"""

from diffusion_lab.diagnostics.feature_clusters import cluster_coverage, kmeans
from diffusion_lab.diagnostics.memorization import memorization_report, nearest_neighbours
from diffusion_lab.diagnostics.schedule_record import schedule_mismatch, schedule_record
from diffusion_lab.diagnostics.time_embedding import embedding_layers, timestep_sensitivity

__all__ = ["cluster_coverage", "embedding_layers", "kmeans", "memorization_report",
           "nearest_neighbours", "schedule_mismatch", "schedule_record", "timestep_sensitivity"]
