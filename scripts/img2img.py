"""Image-to-image (SDEdit) on real images with a checkpoint's model:
python scripts/img2img.py ckpt=PATH [strength=0.5] [target_class=next] [sampler=...]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="img2img")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.img2img import img2img

    with exit_on_user_error():
        img2img(cfg)


if __name__ == "__main__":
    refuse_unless_composable("img2img")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
