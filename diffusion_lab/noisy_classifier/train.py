"""train_noisy_classifier(cfg): the classifier stage of classifier guidance, with the diffusion
runs' lifecycle: checks up front (one line, exit 2), atomic checkpoints, resume
(``ckpt_path=...`` / ``resume=auto``), SIGTERM/SIGUSR1 checkpoint-and-stop, and at the end the
held-out accuracy at each noise level in ``metrics.json`` beside ``accuracy_vs_noise.png``
(a classifier that is right at sigma ~ 0 but at chance from the middle of the schedule on
guides only the last steps: that curve is what to look at before guiding with it).
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.noisy_classifier.lit_module import NoisyClassifierModule
from diffusion_lab.tasks.build import config_to_dict
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import atomic_write_json
from diffusion_lab.tasks.stage_fit import fit_stage, validate_stage_config
from diffusion_lab.utils.images import save_png
from diffusion_lab.utils.plots import line_plot_png

#: the noise levels of the held-out report, as fractions of the schedule's T
REPORT_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def build_noisy_classifier_module(cfg: DictConfig) -> NoisyClassifierModule:
    if int(cfg.data.num_classes) < 2:
        raise ConfigError(f"data={cfg.data.name} has no class labels to train a classifier on")
    if cfg.data.get("image_size") is None:
        raise ConfigError(f"data={cfg.data.name}: the noisy classifier classifies images; "
                          "these data are points")
    classifier = instantiate(cfg.noisy_classifier.model, _convert_="all")
    schedule = instantiate(cfg.schedule, _convert_="all")
    if getattr(schedule, "path_kind", "vp") != "vp":
        raise ConfigError(f"schedule={cfg.schedule._target_.rsplit('.', 1)[-1]}: the noisy "
                          "classifier is trained on the VP forward process; use a VP schedule")
    module = NoisyClassifierModule(
        classifier, schedule, optimizer=instantiate(cfg.noisy_classifier.optimizer, _convert_="all"))
    module.run_config = config_to_dict(cfg)
    return module


def validate_noisy_classifier_config(cfg: DictConfig) -> None:
    validate_stage_config(cfg, "noisy_classifier", lambda: build_noisy_classifier_module(cfg))


def train_noisy_classifier(cfg: DictConfig) -> dict:
    """Train (or resume, or find finished) the noisy classifier of ``cfg``; returns its metrics."""
    validate_noisy_classifier_config(cfg)
    run = fit_stage(cfg, lambda: build_noisy_classifier_module(cfg))
    module = run.module
    report = accuracy_by_noise_level(module.classifier, module.schedule, run.datamodule)
    series = {"held-out accuracy": report["accuracy"],
              "chance": [report["chance"]] * len(report["sigma"])}
    save_png(line_plot_png(report["sigma"], series,
                           "sigma (x = x0 + sigma eps, log scale)", "accuracy",
                           title=f"noisy classifier: {report['count']} held-out images per level",
                           log_x=True),
             run.run_dir / "accuracy_vs_noise.png")
    metrics = {"global_step": run.global_step, "train_seconds": run.seconds,
               "num_parameters": sum(p.numel() for p in module.classifier.parameters()),
               "checkpoint": str(run.last), "heldout_accuracy_by_t": report}
    atomic_write_json(metrics, run.run_dir / "metrics.json")
    print(f"noisy classifier: step {run.global_step}, held-out accuracy "
          + ", ".join(f"t={t}: {a:.3f}" for t, a in zip(report["t"], report["accuracy"],
                                                        strict=True)))
    return metrics


@torch.no_grad()
def accuracy_by_noise_level(classifier, schedule, datamodule, seed: int = 0) -> dict:
    """Accuracy on the whole held-out split (the training split without one) at the timesteps
    round(f (T - 1)) for f in :data:`REPORT_FRACTIONS`, each image noised once with noise drawn
    from ``seed``. Chance level is 1 / num_classes."""
    classifier.eval()
    split = datamodule.val_set if datamodule.val_set is not None else datamodule.train_set
    x, y = split.x, split.y
    steps = sorted({round(f * (schedule.num_steps - 1)) for f in REPORT_FRACTIONS})
    accuracy = []
    for t in steps:
        g = torch.Generator().manual_seed(seed + t)
        right = 0
        for start in range(0, len(x), 500):
            xb, yb = x[start:start + 500], y[start:start + 500]
            tb = torch.full((len(xb),), t, dtype=torch.long)
            eps = torch.randn(xb.shape, generator=g, dtype=xb.dtype)
            logits = classifier(schedule.q_sample(xb, tb, eps), tb.to(xb.dtype))
            right += int((logits.argmax(1) == yb).sum())
        accuracy.append(right / len(x))
    return {"t": steps, "sigma": [float(schedule.sigmas[t]) for t in steps],
            "accuracy": accuracy, "count": len(x), "chance": 1.0 / int(classifier.num_classes)}
