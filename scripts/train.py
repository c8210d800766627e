"""Train a diffusion model: python scripts/train.py [group=option ...] [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from diffusion_lab.tasks.overrides import refuse_unless_composable


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from diffusion_lab.tasks.errors import exit_on_user_error
    from diffusion_lab.tasks.train import train

    with exit_on_user_error():
        metrics = train(cfg)
    # The value Hydra sweepers (e.g. Optuna) optimise, when the run reports one.
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    refuse_unless_composable("train")  # bad overrides: one line, exit 2, before torch loads
    sys.exit(main())
