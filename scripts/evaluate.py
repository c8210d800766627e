"""Evaluate a checkpoint: python scripts/evaluate.py ckpt=PATH [sampler=...] [guidance.scale=W]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.evaluate import evaluate_checkpoint

    with exit_on_user_error():
        evaluate_checkpoint(cfg)


if __name__ == "__main__":
    refuse_unless_composable("evaluate")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
