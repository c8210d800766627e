"""The noisy classifier of a stage checkpoint (``scripts/train_noisy_classifier.py``) as a
sigma-space ``classifier(x, sigma) -> logits`` for :func:`diffusion_lab.classifier_guidance
.classifier_guided`. The file is opened with ``weights_only`` loading and every ``_target_`` of
its stored config must be allow-listed (``tasks/trusted_targets.py``) before anything is built,
so opening it runs no code from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from diffusion_lab.classifier_guidance import VPClassifier
from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file, load_stage_weights
from diffusion_lab.tasks.trusted_targets import check_stored_targets


@dataclass
class LoadedClassifier:
    classifier: VPClassifier
    facts: dict            # class, num_classes, image_shape
    schedule_record: dict  # diagnostics.schedule_record of the schedule it was trained on


def load_noisy_classifier(path, device="cpu") -> LoadedClassifier:
    """The classifier in eval mode, frozen, on ``device`` (CheckpointError: one line)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"noisy classifier not found: {path} (a checkpoint of "
                              "scripts/train_noisy_classifier.py)")
    ckpt = load_checkpoint_file(path)
    config = ckpt.get("diffusion_lab_config")
    facts = ckpt.get("diffusion_lab_noisy_classifier")
    if not isinstance(config, dict) or not isinstance(facts, dict) \
            or "noisy_classifier" not in config or "diffusion_lab_schedule" not in ckpt:
        raise CheckpointError(f"{path} is not a noisy-classifier checkpoint of diffusion-lab "
                              "(write one with scripts/train_noisy_classifier.py)")
    check_stored_targets({"model": config["noisy_classifier"].get("model"),
                          "schedule": config.get("schedule")}, path)
    net = instantiate(OmegaConf.create(config["noisy_classifier"]["model"]), _convert_="all")
    schedule = instantiate(OmegaConf.create(config["schedule"]), _convert_="all")
    load_stage_weights(net, ckpt, "classifier.", path, "classifier")
    net.eval().requires_grad_(False).to(device)
    return LoadedClassifier(VPClassifier(net, schedule), facts, ckpt["diffusion_lab_schedule"])
