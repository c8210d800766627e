"""Sample quality at the end of a run or of a checkpoint, judged by the classifier of the real
data (``diffusion_lab.evaluation``).

For a labelled image dataset and a class-conditional model: samples_per_class samples of every
class at the given guidance scale (fixed per-sample seeds), then
  - accuracy: fraction the classifier assigns to the class they were generated for;
  - FID against the real training images in the classifier's feature space;
  - per class: the accuracy of the samples drawn for it and where the others land (the
    confusion matrix, ``eval_confusion_w<w>.json`` and ``.png``), so one failing class is
    not hidden in the mean;
  - the classifier's own accuracy on the real validation split (its reliability).
For an unconditional model (``module.num_classes=0``, e.g. DDPM's CIFAR-10 model) on such
data: as many samples, drawn without a class (sample i from the noise of (seed, i)), then
  - FID against the real training images in the classifier's feature space, with its
    bootstrap spread;
  - the classifier's Inception Score exp(E KL(p(y|x) || p(y))) (``metrics.class_scores``;
    real held-out images give its scale, ``classifier_score_val``);
  - the predicted-class histogram against the data's class proportions (entropy, classes
    covered, rarest/commonest), ``eval_class_histogram.json`` and ``.png``: a missing digit
    is a dropped mode.
Every number is reported beside the sample counts it was computed from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from diffusion_lab.evaluation import SampleJudge, generate_samples, grid_labels, why_not_judgeable
from diffusion_lab.lit.generate import process_group_size
from diffusion_lab.utils.images import save_grid

log = logging.getLogger(__name__)


def evaluate_module(module, datamodule, cfg: DictConfig, run_dir: Path,
                    distributed: bool = False) -> dict:
    """Accuracy and FID of class-conditional samples, or FID, Inception Score and class
    coverage of an unconditional model's; {} for unlabelled or non-image data.

    With ``distributed`` every rank of the process group calls it and generates its share of
    the samples (the same set as one process would); rank 0 scores them, the others get {}.
    """
    if getattr(module, "super_resolve", None) is not None:  # stage=super_resolution
        return _evaluate_super_resolution(module, datamodule, cfg, run_dir, distributed)
    if getattr(module, "generate", None) is not None:  # stage=text_to_image
        return _evaluate_text_to_image(module, datamodule, cfg, run_dir, distributed)
    if why_not_judgeable(datamodule):
        return {}
    if module.num_classes == 0:
        return evaluate_unconditional(module, datamodule, cfg, run_dir, distributed)
    labels = grid_labels(module.num_classes, cfg.eval.samples_per_class)
    w = cfg.eval.guidance_scale
    x = generate_samples(module, labels, len(labels), seed=cfg.eval.seed, guidance_scale=w,
                         distributed=distributed, progress=f"evaluation samples (w={w:g})")
    if distributed and process_group_size()[0] != 0:
        return {}
    judge = SampleJudge.for_data(datamodule, cfg.paths.cache_dir, cfg.data.name)
    result = {**judge.reference(), **judge(x, labels, w),
              **save_confusion(judge.confusion(x, labels), run_dir, w)}
    per_class = min(10, cfg.eval.samples_per_class)
    keep = torch.cat([torch.nonzero(labels == c)[:per_class, 0] for c in range(module.num_classes)])
    save_grid(x[keep], run_dir / f"eval_samples_w{w:g}.png", nrow=per_class,
              upscale=max(1, 32 // x.shape[-1]))
    return result


def _evaluate_super_resolution(module, datamodule, cfg: DictConfig, run_dir: Path,
                               distributed: bool) -> dict:
    """A super-resolution model's report (``tasks/super_resolve.py``), drawn on rank 0."""
    from diffusion_lab.tasks.super_resolve import evaluate_super_resolution

    if distributed and process_group_size()[0] != 0:
        return {}
    sr = cfg.super_resolution
    return evaluate_super_resolution(
        module, datamodule, images=sr.eval_images, samples_per_image=sr.samples_per_image,
        seed=cfg.eval.seed, run_dir=run_dir, cache_dir=cfg.paths.cache_dir,
        dataset_name=cfg.data.name)


def _evaluate_text_to_image(module, datamodule, cfg: DictConfig, run_dir: Path,
                            distributed: bool) -> dict:
    """A text-to-image model's report (``tasks/text_to_image.py``) at ``eval.guidance_scale``,
    drawn on rank 0."""
    from diffusion_lab.tasks.text_to_image import evaluate_text_to_image, prompts_of

    if distributed and process_group_size()[0] != 0:
        return {}
    text = cfg.text
    report, _ = evaluate_text_to_image(
        module, datamodule, prompts=prompts_of(text.eval_prompts, module.grammar),
        samples_per_prompt=text.eval_samples_per_prompt, seed=cfg.eval.seed, run_dir=run_dir,
        cache_dir=cfg.paths.cache_dir, dataset_name=cfg.data.name,
        guidance_scale=cfg.eval.guidance_scale)
    return report


def evaluate_unconditional(module, datamodule, cfg: DictConfig, run_dir: Path,
                           distributed: bool = False) -> dict:
    """An unconditional model's samples (as many as a class-conditional evaluation draws:
    ``samples_per_class`` x the data's classes) scored by :meth:`SampleJudge.unconditional`; the
    grid ``eval_samples_uncond.png`` and the class histogram beside them."""
    from diffusion_lab.tasks.io import atomic_write_json
    from diffusion_lab.utils.images import save_png
    from diffusion_lab.utils.plots import bar_plot_png

    pixel_data = getattr(datamodule, "pixel_data", datamodule)
    count = cfg.eval.samples_per_class * pixel_data.num_classes
    x = generate_samples(module, None, count, seed=cfg.eval.seed, guidance_scale=None,
                         distributed=distributed, progress="evaluation samples (unconditional)")
    if distributed and process_group_size()[0] != 0:
        return {}
    judge = SampleJudge.for_data(datamodule, cfg.paths.cache_dir, cfg.data.name)
    result = {**judge.reference(), **judge.unconditional(x)}
    fractions = result.pop("data_class_fractions")
    names = pixel_data.class_names or [str(c) for c in range(pixel_data.num_classes)]
    atomic_write_json({"classes": names, "counts": result["class_counts"],
                       "data_fractions": fractions, "num_samples": len(x)},
                      run_dir / "eval_class_histogram.json")
    expected = [f * len(x) for f in fractions]
    figure = bar_plot_png(names, result["class_counts"], "class the classifier sees", "samples",
                           f"{len(x)} unconditional samples: IS {result['classifier_score']:.2f}"
                           f", FID {result['fid_classifier']:.3g}",
                           expected, "data proportions")
    save_png(figure, run_dir / "eval_class_histogram.png")
    nrow = min(10, cfg.eval.samples_per_class)
    save_grid(x[: nrow * min(10, pixel_data.num_classes)], run_dir / "eval_samples_uncond.png",
              nrow=nrow, upscale=max(1, 32 // x.shape[-1]))
    return result


def save_confusion(confusion: torch.Tensor, run_dir: Path, guidance_scale: float) -> dict:
    """Per-class accuracy A_c = C[c, c] / sum_j C[c, j] of the samples drawn for class c: writes
    ``eval_confusion_w<w>.json`` (the counts, A_c) and ``eval_confusion_w<w>.png`` (each row as
    fractions: where the samples of each class end up); returns the worst class and its A_c."""
    from diffusion_lab.tasks.io import atomic_write_json
    from diffusion_lab.utils.images import save_png
    from diffusion_lab.utils.plots import heatmap_png

    counts = confusion.double()
    per_class = (counts.diagonal() / counts.sum(1).clamp(min=1)).tolist()
    worst = min(range(len(per_class)), key=per_class.__getitem__)
    w = f"{guidance_scale:g}"
    atomic_write_json({"guidance_scale": guidance_scale, "rows": "class drawn for",
                       "columns": "class the classifier sees", "counts": confusion.tolist(),
                       "per_class_accuracy": per_class}, run_dir / f"eval_confusion_w{w}.json")
    classes = [str(c) for c in range(len(per_class))]
    fractions = counts / counts.sum(1, keepdim=True).clamp(min=1)
    figure = heatmap_png(fractions.numpy(), classes, classes, "class the classifier sees",
                         "class drawn for", f"samples at w={w}: where each class lands")
    save_png(figure, run_dir / f"eval_confusion_w{w}.png")
    return {"worst_class": worst, "worst_class_accuracy": per_class[worst]}


def datamodule_from_checkpoint(ckpt: dict):
    """The data a checkpoint was trained on (same split), loaded."""
    from hydra.utils import instantiate

    from diffusion_lab.tasks.build import stored_config

    train_cfg = stored_config(ckpt)
    datamodule = instantiate(train_cfg.data.module, _convert_="all")
    datamodule.setup("fit")
    return datamodule


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """scripts/evaluate.py: rebuild the checkpoint's model and data, then evaluate_module."""
    from omegaconf import OmegaConf

    from diffusion_lab.tasks.build import (
        adopt_checkpoint_schedule,
        build_sampler,
        module_from_checkpoint,
    )
    from diffusion_lab.tasks.guidance_setup import configure_guidance, guidance_options
    from diffusion_lab.tasks.io import atomic_write_json, load_checkpoint_file
    from diffusion_lab.tasks.schedule_check import check_schedule_agreement
    from diffusion_lab.tasks.validate import (
        ConfigError,
        validate_counts,
        validate_sample_config,
        validate_sampling,
    )

    validate_sample_config(cfg)
    if OmegaConf.select(cfg, "guidance.classifier_ckpt", default=None) is not None:
        raise ConfigError("guidance.classifier_ckpt: evaluate.py sweeps the model's own guidance; "
                          "score classifier-guided samples with scripts/sample.py (same options)")
    if cfg.get("inspect"):
        validate_counts(cfg, "inspect.num_samples", "inspect.clusters")
    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt, path=cfg.ckpt, autoencoder=cfg.get("autoencoder_path"),
                                    latent_scale=cfg.get("latent_scale")).to(cfg.device)
    check_schedule_agreement(cfg, ckpt, module.schedule, cfg.ckpt)
    adopt_checkpoint_schedule(cfg, ckpt)
    configure_guidance(module, cfg.guidance, cfg.device)
    validate_sampling(cfg, module.schedule, module)
    module.sampler = build_sampler(cfg, module.schedule)
    train_cfg = OmegaConf.create(ckpt["diffusion_lab_config"])
    datamodule = datamodule_from_checkpoint(ckpt)
    eval_cfg = OmegaConf.create(
        {
            "paths": {"cache_dir": cfg.paths.cache_dir},
            "data": {"name": train_cfg.data.name},
            "eval": {
                "samples_per_class": cfg.samples_per_class,
                "guidance_scale": cfg.guidance.scale,
                "seed": cfg.seed,
            },
        }
    )
    run_dir = Path(cfg.paths.run_dir)
    result = {
        "checkpoint": str(cfg.ckpt),
        "global_step": ckpt.get("global_step"),
        "sampler": cfg.sampler.solver._target_,
        "steps": cfg.sampler.steps,
        "nfe_per_sample": module.sampler.nfe,
        "guidance_scale": cfg.guidance.scale,
        **guidance_options(cfg.guidance),
        **evaluate_module(module, datamodule, eval_cfg, run_dir),
    }
    if cfg.get("inspect"):  # memorisation and feature-cluster coverage
        from diffusion_lab.evaluation.inspection import inspect_unconditional

        result.update(inspect_unconditional(
            module, datamodule, num_samples=cfg.inspect.num_samples, clusters=cfg.inspect.clusters,
            seed=cfg.seed, cache_dir=cfg.paths.cache_dir, dataset_name=train_cfg.data.name,
            out_dir=run_dir))
    atomic_write_json(result, run_dir / "metrics.json")
    for k, v in result.items():
        print(f"{k}: {v}")
    return result
