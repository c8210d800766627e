"""Sampling-time guidance options from the config: ``guidance.interval=[lo, hi]``,
``guidance=autoguidance guidance.guide_ckpt=PATH`` and ``guidance.rescale=PHI`` (see
:mod:`diffusion_lab.guidance_variants`), ``guidance.dynamic_threshold=P``
(:mod:`diffusion_lab.thresholding`), ``guidance=classifier guidance.classifier_ckpt=PATH
guidance.classifier_scale=S`` (:mod:`diffusion_lab.classifier_guidance`)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from diffusion_lab.guidance import check_guidance_rescale
from diffusion_lab.guidance_variants import check_interval, guidance_rule
from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file
from diffusion_lab.tasks.validate import ConfigError
from diffusion_lab.thresholding import check_threshold_percentile


def configure_guidance(module, guidance: DictConfig, device="cpu") -> None:
    """Set ``module.guidance_rule`` when the config asks for an interval, a guide model or a
    guidance rescale, ``module.dynamic_threshold`` for ``guidance.dynamic_threshold`` and
    ``module.classifier_guidance`` for ``guidance.classifier_ckpt``."""
    needs = {"guide_ckpt": "guidance=autoguidance needs guidance.guide_ckpt=<a weaker checkpoint "
                           "of the same model>",
             "classifier_ckpt": "guidance=classifier needs guidance.classifier_ckpt=<a checkpoint "
                                "of scripts/train_noisy_classifier.py>"}
    for key, what in needs.items():
        if OmegaConf.is_missing(guidance, key):
            raise ConfigError(what)
    threshold = OmegaConf.select(guidance, "dynamic_threshold", default=None)
    if threshold is not None:
        try:
            threshold = check_threshold_percentile(threshold)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if module.codec is not None or len(module.sample_shape) != 3:
            raise ConfigError("guidance.dynamic_threshold thresholds pixel values in [-1, 1]; "
                              "this checkpoint's samples are "
                              + ("latents (clamped to their measured range)"
                                 if module.codec is not None else "not images"))
    module.dynamic_threshold = threshold
    module.classifier_guidance = classifier_guidance_rule(module, guidance, device)
    interval = OmegaConf.select(guidance, "interval", default=None)
    guide_ckpt = OmegaConf.select(guidance, "guide_ckpt", default=None)
    rescale = OmegaConf.select(guidance, "rescale", default=None) or 0.0
    try:
        rescale = check_guidance_rescale(rescale)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if interval is None and guide_ckpt is None and rescale == 0.0:
        return
    if interval is not None:
        try:
            interval = list(check_interval(interval))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    guide = None
    if guide_ckpt is not None:
        from diffusion_lab.tasks.build import module_from_checkpoint

        weak = module_from_checkpoint(load_checkpoint_file(guide_ckpt), path=guide_ckpt).to(device)
        if weak.model_facts() != module.model_facts():
            raise CheckpointError(
                f"guidance.guide_ckpt={guide_ckpt} is a different model ({weak.model_facts()}) "
                f"from the one sampled ({module.model_facts()})")
        use_ema = bool(OmegaConf.select(guidance, "guide_use_ema", default=True))
        guide = weak.denoiser(use_ema=use_ema, guidance_scale=1.0)
    module.guidance_rule = guidance_rule(interval, guide, rescale)


def classifier_guidance_rule(module, guidance: DictConfig, device="cpu"):
    """``rule(denoiser, pass_cond) -> guided denoiser`` for ``guidance.classifier_ckpt``, or
    None when it is not set. The classifier must see what the model samples (pixel images of
    the same shape), know the same classes (a class-conditional model's), and have been trained
    on the same noise schedule; otherwise one line (ConfigError / CheckpointError)."""
    path = OmegaConf.select(guidance, "classifier_ckpt", default=None)
    if path is None:
        return None
    from diffusion_lab.classifier_guidance import check_classifier_scale, classifier_guided
    from diffusion_lab.diagnostics.schedule_record import schedule_mismatch
    from diffusion_lab.noisy_classifier.load import load_noisy_classifier

    try:
        scale = check_classifier_scale(OmegaConf.select(guidance, "classifier_scale", default=1.0))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if module.codec is not None or len(module.sample_shape) != 3:
        raise ConfigError("guidance.classifier_ckpt: classifier guidance differentiates a "
                          "classifier of pixel images; this checkpoint samples "
                          + ("latents" if module.codec is not None else "points, not images"))
    loaded = load_noisy_classifier(path, device)
    shape, classes = loaded.facts["image_shape"], loaded.facts["num_classes"]
    if list(shape) != list(module.sample_shape):
        raise ConfigError(f"guidance.classifier_ckpt={path} classifies {shape} images, the "
                          f"model samples {list(module.sample_shape)}")
    if module.num_classes > 0 and classes != module.num_classes:
        raise ConfigError(f"guidance.classifier_ckpt={path} knows {classes} classes, the "
                          f"class-conditional model {module.num_classes}")
    mismatch = schedule_mismatch(loaded.schedule_record, module.schedule)
    if mismatch:
        raise ConfigError(f"guidance.classifier_ckpt={path} was trained on another noise "
                          f"schedule than the model ({mismatch}): train it with the model's "
                          "schedule=...")
    module.classifier_classes = classes

    def rule(denoiser, pass_cond: bool):
        return classifier_guided(denoiser, loaded.classifier, scale, pass_cond=pass_cond)

    return rule


def guidance_options(guidance: DictConfig) -> dict:
    """The sampling-time guidance options that are on, for the run's record (sample_info.json,
    metrics.json): ``guidance_interval``, ``guidance_rescale``, ``guidance_guide_ckpt``,
    ``guidance_dynamic_threshold``, ``guidance_classifier_ckpt``, ``guidance_classifier_scale``."""
    out = {}
    for key in ("interval", "rescale", "guide_ckpt", "dynamic_threshold", "classifier_ckpt",
                "classifier_scale"):
        value = OmegaConf.select(guidance, key, default=None)
        if value not in (None, 0, 0.0):
            out[f"guidance_{key}"] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return out
