"""Train the autoencoder of latent diffusion: python scripts/train_autoencoder.py [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.autoencoder.train import train_autoencoder
from diffusion_lab.tasks.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_autoencoder")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        train_autoencoder(cfg)


if __name__ == "__main__":
    sys.exit(main())
