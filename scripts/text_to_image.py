"""Sample a text-to-image checkpoint (scripts/train.py stage=text_to_image) for prompts:
python scripts/text_to_image.py ckpt=PATH prompts='["seven slanted left", "3 upright"]' [guidance.scale=3]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="text_to_image")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.text_to_image import text_to_image

    with exit_on_user_error():
        text_to_image(cfg)


if __name__ == "__main__":
    refuse_unless_composable("text_to_image")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
