"""run_recipe(cfg): one of the practitioner's recipes (``experiment=recipe_*``), end to end.

The preset holds the training config the recipe starts from and a ``recipe`` node: the
recipe's ``run`` function (``_partial_``) with its own parameters and the report's title and
summary. The recipe trains what it needs into sub-folders of the run folder and writes
``report.md``, ``report.json`` and PNGs there (``diffusion_lab.recipes``)."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.recipes.context import RecipeContext
from diffusion_lab.recipes.report import RecipeReport
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.validate import refused_as_config_error, validate_train_config


def recipe_command(cfg: DictConfig) -> str:
    """The command line that ran this recipe (Hydra's overrides), for its report."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # composed outside @hydra.main (tests)
        overrides = [f"experiment={cfg.recipe.name}"]
    return "python scripts/recipe.py " + " ".join(overrides)


def run_recipe(cfg: DictConfig) -> Path:
    """Validate, run the recipe, write its report; returns the path of report.md."""
    if not cfg.get("recipe") or "run" not in cfg.recipe:
        raise ConfigError("no recipe: choose one with experiment=recipe_<name> "
                          "(conf/experiment/recipe_*.yaml)")
    validate_train_config(cfg)
    with refused_as_config_error("recipe"):
        run = instantiate(cfg.recipe.run, _convert_="all")
    out_dir = Path(cfg.paths.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = RecipeReport(cfg.recipe.name, cfg.recipe.title, out_dir, recipe_command(cfg),
                          cfg.recipe.summary)
    run(RecipeContext(cfg, out_dir, report))
    path = report.write()
    print(f"recipe {cfg.recipe.name}: report written to {path}")
    return path
