"""Memorisation and feature-cluster coverage of generated images, judged against the real data.

``memorization`` runs the nearest-neighbour copy test (``diagnostics.memorization``) twice: on
pixels and on the data classifier's penultimate features, and writes a grid of sample /
nearest-training-image pairs, the most copy-like samples first. ``feature_coverage`` clusters
the classifier features of the real training images with k-means and counts the clusters the
samples reach (``diagnostics.feature_clusters``). Both return flat dicts of numbers, each
beside the sample count it came from, for ``metrics.json`` and reports.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from diffusion_lab.diagnostics.feature_clusters import cluster_coverage
from diffusion_lab.diagnostics.memorization import COPY_RATIO, memorization_report, pair_images
from diffusion_lab.diagnostics.time_embedding import health_on_data
from diffusion_lab.utils.images import save_grid


@torch.no_grad()
def _features(judge, x: Tensor, batch_size: int = 500) -> Tensor:
    return torch.cat([judge.features(b) for b in x.split(batch_size)])


def memorization_with_pairs(judge, samples: Tensor, train_x: Tensor,
                            ratio_threshold: float = COPY_RATIO, pairs: int = 16
                            ) -> tuple[dict, Tensor]:
    """(copy shares in pixel and feature space, (2 * pairs, C, H, W) sample / nearest training
    image (in pixels) pairs, the most copy-like samples (smallest pixel d1/d2) first)."""
    pixel = memorization_report(samples, train_x, ratio_threshold)
    feats = memorization_report(_features(judge, samples), _features(judge, train_x),
                                ratio_threshold)
    out = {"memorization_samples": len(samples), "memorization_threshold": ratio_threshold,
           "copy_share_pixel": pixel["copy_share"], "median_nn_ratio_pixel": pixel["median_ratio"],
           "copy_share_feature": feats["copy_share"],
           "median_nn_ratio_feature": feats["median_ratio"],
           "median_nn_distance_pixel": float(pixel["d1"].median()),
           "min_nn_ratio_pixel": float(pixel["ratio"].min())}
    return out, pair_images(samples, train_x, pixel["nearest"], pixel["ratio"].argsort(), pairs)


def memorization(judge, samples: Tensor, train_x: Tensor, out_dir: Path | None = None,
                 ratio_threshold: float = COPY_RATIO, pairs: int = 16) -> dict:
    """Copy shares in pixel and feature space; ``out_dir/memorization_pairs.png`` (two columns:
    sample, nearest training image in pixels; rows sorted by the pixel ratio d1/d2)."""
    out, grid = memorization_with_pairs(judge, samples, train_x, ratio_threshold, pairs)
    if out_dir is not None:
        path = save_grid(grid, Path(out_dir) / "memorization_pairs.png", nrow=2,
                         upscale=max(1, 32 // samples.shape[-1]))
        out["memorization_pairs_png"] = str(path)
    return out


def feature_coverage(judge, samples: Tensor, train_x: Tensor, train_y: Tensor | None,
                     k: int = 20, min_fraction: float = 0.25, seed: int = 0) -> dict:
    """k-means clusters of real classifier features covered by the samples' features."""
    result = cluster_coverage(_features(judge, train_x), train_y, _features(judge, samples), k,
                              min_fraction=min_fraction, seed=seed)
    out = {"clusters_k": k, "clusters_covered": result["clusters_covered"],
           "clusters_num_samples": result["num_samples"]}
    if "purity" in result:
        out.update({"cluster_purity": result["purity"],
                    "classes_in_clusters": result["classes_in_clusters"]})
    return out


def embedding_health(module, datamodule, seed: int = 0, num_inputs: int = 16) -> dict:
    """Timestep-embedding health of the EMA network on fixed noisy real images."""
    data = datamodule.val_set or datamodule.train_set
    x0 = data.x[:num_inputs].to(module.device)
    codec = getattr(module, "codec", None)
    if codec is not None and tuple(x0.shape[1:]) != tuple(module.sample_shape):
        x0 = codec.encode(x0)  # images of a latent model: the network sees their latents
    cond = data.y[:num_inputs].to(module.device) if module.num_classes > 0 else None
    result = health_on_data(module.ema.model, module.schedule, x0, cond, seed=seed)
    return {"time_embedding_status": result["status"],
            "time_embedding_output_spread": result["output"]}


def inspect_unconditional(module, datamodule, *, num_samples: int, clusters: int, seed: int,
                          cache_dir, dataset_name: str, out_dir: Path | None = None) -> dict:
    """Memorisation and cluster coverage of ``num_samples`` unconditional samples (w = 0 with
    the null class on a class-conditional model); {} with the reason when they cannot be drawn
    or judged."""
    from diffusion_lab.evaluation.judge import SampleJudge, why_not_judgeable
    from diffusion_lab.evaluation.samples import generate_samples

    reason = why_not_judgeable(datamodule) or (
        module.guidance_problem(0.0) if module.num_classes > 0 else "")
    if reason:
        return {"inspection_skipped": reason}
    health = embedding_health(module, datamodule, seed)
    x = generate_samples(module, None, num_samples, seed=seed, guidance_scale=None,
                         distributed=False, progress="inspection samples (unconditional)")
    judge = SampleJudge.for_data(datamodule, cache_dir, dataset_name)
    train = getattr(datamodule, "pixel_data", datamodule).train_set  # decoded samples: images
    return {**health, **memorization(judge, x, train.x, out_dir),
            **feature_coverage(judge, x, train.x, train.y, k=clusters, seed=seed)}
