"""Invert real images into noise and interpolate between them:
python scripts/interpolate.py ckpt=PATH [sampler=ddim] [sampler.steps=N] [pairs=4] [frames=8] [source=val|noise]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="interpolate")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.interpolate import interpolate

    with exit_on_user_error():
        interpolate(cfg)


if __name__ == "__main__":
    refuse_unless_composable("interpolate")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
