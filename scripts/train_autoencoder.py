"""Train the autoencoder of latent diffusion: python scripts/train_autoencoder.py [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_autoencoder")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.autoencoder.train import train_autoencoder
    from diffusion_lab.tasks.errors import exit_on_user_error

    with exit_on_user_error():
        train_autoencoder(cfg)


if __name__ == "__main__":
    refuse_unless_composable("train_autoencoder")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
