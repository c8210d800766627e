"""Sample from a checkpoint: python scripts/sample.py ckpt=PATH [sampler=ddim] [sampler.steps=N] [guidance.scale=W]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.errors import exit_on_user_error
from diffusion_lab.tasks.sample import sample


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        sample(cfg)


if __name__ == "__main__":
    sys.exit(main())
