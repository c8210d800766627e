"""Fill a masked region of real images with a checkpoint's model:
python scripts/inpaint.py ckpt=PATH [mask=center|left|right|top|bottom|random] [resample=10] [sampler.steps=N]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="inpaint")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.inpaint import inpaint

    with exit_on_user_error():
        inpaint(cfg)


if __name__ == "__main__":
    refuse_unless_composable("inpaint")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
