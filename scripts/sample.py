"""Sample from a checkpoint: python scripts/sample.py ckpt=PATH [sampler=ddim] [sampler.steps=N] [guidance.scale=W]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.sample import sample

    with exit_on_user_error():
        sample(cfg)


if __name__ == "__main__":
    refuse_unless_composable("sample")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
