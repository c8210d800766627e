"""Train the noise-aware classifier of classifier guidance:
python scripts/train_noisy_classifier.py [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_noisy_classifier")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.noisy_classifier.train import train_noisy_classifier
    from diffusion_lab.tasks.errors import exit_on_user_error

    with exit_on_user_error():
        train_noisy_classifier(cfg)


if __name__ == "__main__":
    refuse_unless_composable("train_noisy_classifier")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
