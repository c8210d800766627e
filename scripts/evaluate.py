"""Evaluate a checkpoint: python scripts/evaluate.py ckpt=PATH [sampler=...] [guidance.scale=W]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.errors import exit_on_user_error
from diffusion_lab.tasks.evaluate import evaluate_checkpoint


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        evaluate_checkpoint(cfg)


if __name__ == "__main__":
    sys.exit(main())
