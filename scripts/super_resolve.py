"""Super-resolve held-out images with a checkpoint of scripts/train.py stage=super_resolution:
python scripts/super_resolve.py ckpt=PATH [sampler=ddim] [sampler.steps=N] [samples_per_image=K]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="super_resolve")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.super_resolve import super_resolve

    with exit_on_user_error():
        super_resolve(cfg)


if __name__ == "__main__":
    refuse_unless_composable("super_resolve")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
