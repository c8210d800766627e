"""Run one practitioner's recipe and write its report (markdown + PNGs) into its output folder:
python scripts/recipe.py experiment=recipe_<name> [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.recipe import run_recipe

    with exit_on_user_error():
        run_recipe(cfg)


if __name__ == "__main__":
    refuse_unless_composable("train")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
