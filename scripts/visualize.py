"""Animate a checkpoint's reverse process: python scripts/visualize.py ckpt=PATH [sampler=ddim] [seed=N]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="visualize")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.visualize import visualize

    with exit_on_user_error():
        visualize(cfg)


if __name__ == "__main__":
    refuse_unless_composable("visualize")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
