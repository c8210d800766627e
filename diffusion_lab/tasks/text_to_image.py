"""Text-to-image runs: the stage's checks, its end-of-training report and
``scripts/text_to_image.py`` (a checkpoint sampled for any prompts, sampler, step count,
guidance scale and seeds).

Both write ``text_to_image.png`` (one row per prompt) and ``text_to_image.json``: slant
adherence (and its chance rate), class accuracy and FID by the data's classifier
(``text_to_image.evaluation``); the script also ``samples.npz`` (``x``, ``prompts``).
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import atomic_write_json
from diffusion_lab.utils.images import save_grid

GRID_COLUMNS = 10


def validate_text_to_image_config(cfg: DictConfig) -> None:
    """stage=text_to_image's own checks, before the model is built (one line each)."""
    from diffusion_lab.tasks.validate import validate_pixel_image_stage

    text = cfg.text
    validate_pixel_image_stage(cfg, "text_to_image", "text-to-image")
    words = text.get("class_words")
    if not isinstance(words, (list, ListConfig)) or not all(isinstance(w, str) for w in words):
        raise ConfigError(f"text.class_words must be a list of words, one per class, got {words!r}")
    classes = int(cfg.data.get("num_classes", 0) or 0)
    if len(words) != classes:
        raise ConfigError(f"stage=text_to_image captions labelled images: text.class_words has "
                          f"{len(words)} words for data={cfg.data.name}'s {classes} classes")
    holdout = text.get("holdout")
    if holdout is not None and (not isinstance(holdout, (list, ListConfig))
                                or not all(isinstance(h, str) for h in holdout)):
        raise ConfigError(f"text.holdout must be a list of prompts such as 'seven slanted left', "
                          f"got {holdout!r}")
    if not isinstance(text.get("numerals"), bool):
        raise ConfigError(f"text.numerals must be true or false, got {text.get('numerals')!r}")
    threshold = text.get("slant_threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 < threshold < float("inf"):
        raise ConfigError(f"text.slant_threshold must be a number > 0, got {threshold!r}")
    for key in ("encoder.dim", "encoder.depth", "encoder.num_heads", "eval_samples_per_prompt"):
        value = OmegaConf.select(text, key)
        low = 0 if key == "encoder.depth" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"text.{key} must be an integer >= {low}, got {value!r}")
    try:  # words distinct, prompts known to the vocabulary
        from diffusion_lab.text_to_image.build import caption_grammar

        grammar = caption_grammar(text)
        prompts_of(text.get("eval_prompts"), grammar, "text.eval_prompts")
        for name in ("prompt_grid", "prompt_guidance_sweep"):
            callback = OmegaConf.select(cfg, f"callbacks.{name}")
            if callback is not None and callback.get("prompts") is not None:
                prompts_of(callback.prompts, grammar, f"callbacks.{name}.prompts")
    except ValueError as e:
        raise ConfigError(f"text: {e}") from None


def prompts_of(value, grammar, name: str = "prompts") -> list[str]:
    """The prompts of ``value``: one string or a list of them; None: every class with every
    slant phrase. ConfigError (one line) for anything else or an unknown word."""
    from diffusion_lab.text_to_image.evaluation import default_prompts

    if value is None:
        return default_prompts(grammar)
    prompts = [value] if isinstance(value, str) else value
    if not isinstance(prompts, (list, ListConfig)) or not prompts \
            or not all(isinstance(p, str) for p in prompts):
        raise ConfigError(f"{name} must be a prompt or a list of prompts, got {value!r}")
    for p in prompts:
        try:
            grammar.tokenizer.encode_one(p)
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from None
    return [str(p) for p in prompts]


def evaluate_text_to_image(module, datamodule, *, prompts: list[str], samples_per_prompt: int,
                           seed: int, run_dir: Path, cache_dir, dataset_name: str,
                           guidance_scale: float | None = None, sampler=None,
                           batch_size: int = 500, metrics: bool = True,
                           negative_prompt: str | None = None) -> tuple[dict, object]:
    """Samples for ``prompts`` (guided against ``negative_prompt`` when given), their grid and
    scores; returns (report, samples)."""
    from diffusion_lab.evaluation import judge_if_labelled
    from diffusion_lab.text_to_image.evaluation import (
        generate_for_prompts,
        prompt_adherence,
        prompt_grid,
    )

    spec = module.sampler_or_default(sampler)
    w = module.guidance_scale if guidance_scale is None else float(guidance_scale)
    start = time.perf_counter()
    samples = generate_for_prompts(module, prompts, samples_per_prompt=samples_per_prompt,
                                   seed=seed, sampler=spec, guidance_scale=w,
                                   batch_size=batch_size, negative_prompt=negative_prompt,
                                   progress=f"text-to-image ({len(prompts)} prompts x "
                                            f"{samples_per_prompt}, w={w:g})")
    seconds = time.perf_counter() - start
    judge = judge_if_labelled(datamodule, cache_dir, dataset_name) \
        if metrics and datamodule is not None else None
    train_set = getattr(datamodule, "train_set", None)
    report = prompt_adherence(module.grammar, prompts, samples, samples_per_prompt, judge=judge,
                              data_images=getattr(train_set, "x", None),
                              data_labels=getattr(train_set, "y", None))
    report.update({"t2i_guidance_scale": w, "t2i_negative_prompt": negative_prompt,
                   "t2i_seed": seed, "t2i_nfe_per_sample":
                   spec.nfe * (1 if w in (0, 1) else 2), "t2i_seconds": round(seconds, 2)})
    grid, columns = prompt_grid(samples, samples_per_prompt, GRID_COLUMNS)
    save_grid(grid, run_dir / "text_to_image.png", nrow=columns,
              upscale=max(1, 32 // samples.shape[-1]))
    atomic_write_json({**report, "prompts": prompts}, run_dir / "text_to_image.json")
    return report, samples


def text_to_image(cfg: DictConfig) -> dict:
    """scripts/text_to_image.py: the checkpoint's model sampled for ``prompts``."""
    import numpy as np

    from diffusion_lab.tasks.build import checkpoint_sampler, module_from_checkpoint
    from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint
    from diffusion_lab.tasks.io import load_checkpoint_file
    from diffusion_lab.tasks.validate import validate_counts, validate_sample_config

    validate_sample_config(cfg)  # finite values, seed, batch_size, metrics
    validate_counts(cfg, "samples_per_prompt")
    guidance = cfg.guidance
    keys = set(guidance.keys())  # (``in guidance`` is False for a mandatory ??? value)
    for key in ("interval", "dynamic_threshold", "classifier_ckpt", "guide_ckpt"):
        # guidance=autoguidance / classifier carry their checkpoint key, set or not
        if key in keys and (key.endswith("_ckpt") or guidance.get(key) is not None):
            raise ConfigError(f"guidance.{key} is not built for text-to-image models "
                              "(classifier-free guidance by guidance.scale)")
    if guidance.get("rescale", 0.0):
        raise ConfigError("guidance.rescale is not built for text-to-image models "
                          "(classifier-free guidance by guidance.scale)")
    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt, path=cfg.ckpt, text_to_image=True).to(cfg.device)
    prompts = prompts_of(cfg.get("prompts"), module.grammar)
    negative = cfg.get("negative_prompt")
    if negative is not None:
        if not isinstance(negative, str):
            raise ConfigError(f"negative_prompt must be one prompt, got {negative!r}")
        prompts_of(negative, module.grammar, "negative_prompt")
        if cfg.guidance.scale == 1:
            raise ConfigError("negative_prompt needs guidance.scale != 1 (at w = 1 the samples "
                              "follow the prompt alone)")
    sampler = checkpoint_sampler(cfg, ckpt, module, check_guidance=True)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = cfg.get("metrics", True)
    datamodule = datamodule_from_checkpoint(ckpt) if metrics else None
    report, samples = evaluate_text_to_image(
        module, datamodule, prompts=prompts, samples_per_prompt=cfg.samples_per_prompt,
        seed=cfg.seed, run_dir=run_dir, cache_dir=cfg.paths.cache_dir,
        dataset_name=ckpt["diffusion_lab_config"]["data"]["name"],
        guidance_scale=cfg.guidance.scale, sampler=sampler, batch_size=cfg.batch_size,
        metrics=metrics, negative_prompt=negative)
    np.savez_compressed(run_dir / "samples.npz", x=samples.numpy(),
                        prompts=np.array([p for p in prompts for _ in range(cfg.samples_per_prompt)]))
    report.update({"checkpoint": str(cfg.ckpt), "global_step": ckpt.get("global_step"),
                   "sampler": OmegaConf.select(cfg, "sampler.solver._target_", default=None),
                   "steps": sampler.steps, "prompts": prompts})
    atomic_write_json(report, run_dir / "text_to_image.json")
    adherence = report.get("t2i_slant_adherence")
    accuracy = report.get("t2i_class_accuracy")
    print(f"{len(samples)} samples for {len(prompts)} prompts (w={report['t2i_guidance_scale']:g}, "
          f"{report['t2i_nfe_per_sample']} NFE each, {report['t2i_seconds']:.1f}s)"
          + ("" if adherence is None else f": slant as asked {adherence:.1%}")
          + ("" if accuracy is None else f", class as named {accuracy:.1%}")
          + f" -> {run_dir / 'text_to_image.png'}")
    return report
