"""Each recipe end to end at tiny size (8x8 digits, a small U-Net, a few steps): the report's
structure (report.md sections and images that exist, report.json numbers), and that the
diagnostics say what the recipe is about (the zeroed t-embedding is flagged dead, the healthy
one is not; copies of the duplicated images are found)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import SMALL_UNET

from diffusion_lab.tasks.recipe import run_recipe

TINY = [
    "data=digits", "backbone=unet_small", *SMALL_UNET, "backbone.dropout=0",
    "trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1", "callbacks.checkpoint.every_n_train_steps=3",
    "callbacks.sample_grid=null", "callbacks.loss_by_t=null", "eval.samples_per_class=1",
    "schedule.num_steps=20", "sampler.steps=3", "data.module.batch_size=16",
    "module.warmup_steps=0",
]
# each recipe's own sizes, and the headings its report must hold
RECIPES = {
    "recipe_tiny_ddpm": (["recipe.run.strip_samples=3", "recipe.run.strip_columns=4"],
                         ["## Training", "## Samples along the reverse process", "## Evaluation"]),
    # the linear schedule's betas scale with 1000/T: T = 20 would end at beta = 1
    "recipe_schedules": (["recipe.run.grid_per_class=2", "schedule.num_steps=100"],
                         ["## Sample grids", "## Quality"]),
    "recipe_ddim_vs_ddpm": (["recipe.run.samples_per_class=2",
                             "recipe.run.samplers.ddim_20.steps=5",
                             "recipe.run.samplers.ddim_50.steps=10"],
                            ["## Per sample and as distributions"]),
    "recipe_guidance": (["recipe.run.samples_per_class=2", "recipe.run.grid_per_class=2"],
                        ["## FID and accuracy against w", "## One grid per w",
                         "Elbow of FID vs w"]),
    "recipe_dead_time_embedding": (["recipe.run.grid_per_class=2"],
                                   ["## Training loss", "## Timestep-embedding health"]),
    "recipe_duplication": (["recipe.run.num_samples=20", "recipe.run.pairs=4",
                            "data.module.dataset.source._target_=diffusion_lab.data.digits.digits",
                            "data.module.dataset.times=50"],
                           ["## Data", "## Memorisation check"]),
}


def run_tiny(make_cfg, tmp_path, monkeypatch, shared_cache, name) -> tuple[Path, dict]:
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(shared_cache))
    monkeypatch.setenv("DIFFUSION_LAB_PROGRESS", "0")
    own, _ = RECIPES[name]
    cfg = make_cfg(f"experiment={name}", *TINY, *own, f"paths.cache_dir={shared_cache}")
    report = run_recipe(cfg)
    return report, json.loads((report.parent / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_report_structure(make_cfg, tmp_path, monkeypatch, shared_cache, name):
    report, data = run_tiny(make_cfg, tmp_path, monkeypatch, shared_cache, name)
    text = report.read_text()
    assert text.startswith("# Recipe ") and "- command: `python scripts/recipe.py" in text
    for heading in RECIPES[name][1]:
        assert heading in text, heading
    assert data["images"], "a report without pictures"
    for image in data["images"]:
        assert (report.parent / image).is_file() and f"]({image})" in text
    assert data["numbers"]
    checks = CHECKS.get(name)
    if checks:
        checks(data["numbers"], report.parent)


def _dead_flagged(numbers, out_dir):
    assert numbers["dead/status"] == "dead" and numbers["dead/output_spread"] == 0.0
    assert numbers["healthy/status"] == "healthy"
    # the callback's warning on the dead run's dashboard, none on the healthy one
    assert list((out_dir / "dead" / "media").glob("time_embedding_warning_step*.json"))
    assert not list((out_dir / "healthy" / "media").glob("time_embedding_warning_step*.json"))


def _guidance(numbers, out_dir):
    assert numbers["elbow_w"] in (1.0, 3.0, 5.0, 7.0, 10.0)
    assert {f"fid_w{w}" for w in (1, 3, 5, 7, 10)} <= set(numbers)


def _ddim(numbers, out_dir):
    # both references measured for every sampler; each reference is at distance 0 from itself
    assert numbers["ddim_1000/distance_to_ddim_1000"] == 0.0
    assert numbers["ddpm_1000/distance_to_ddpm_1000"] == 0.0
    for name in ("ddim_20", "ddim_50", "default"):
        assert numbers[f"{name}/distance_to_ddim_1000"] > 0.0
        assert numbers[f"{name}/distance_to_ddpm_1000"] > 0.0


CHECKS = {"recipe_dead_time_embedding": _dead_flagged, "recipe_guidance": _guidance,
          "recipe_ddim_vs_ddpm": _ddim}


def test_training_key_ignores_paths_and_names_but_not_training(make_cfg, tmp_path):
    from diffusion_lab.recipes.context import training_key

    base = make_cfg("experiment=recipe_tiny_ddpm", *TINY, run_dir=tmp_path / "a" / "run")
    moved = make_cfg("experiment=recipe_guidance", *TINY, "name=elsewhere",
                     run_dir=tmp_path / "b" / "run")
    assert training_key(base) == training_key(moved)
    for change in ("schedule=linear", "+backbone.zero_time_embedding=true", "seed=1",
                   "trainer.max_steps=4", "eval.enabled=false"):
        other = make_cfg("experiment=recipe_tiny_ddpm", *TINY, change)
        assert training_key(other) != training_key(base), change


@pytest.mark.slow
def test_recipes_train_a_shared_model_once(make_cfg, tmp_path, monkeypatch, shared_cache):
    """Recipe 1 trains the base model; recipe 4 then reuses it (same folder, no new training)
    and says so in its report."""
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(shared_cache))
    monkeypatch.setenv("DIFFUSION_LAB_PROGRESS", "0")
    reports = {}
    for name in ("recipe_tiny_ddpm", "recipe_guidance"):
        cfg = make_cfg(f"experiment={name}", *TINY, *RECIPES[name][0],
                       f"paths.cache_dir={shared_cache}", run_dir=tmp_path / name)
        path = run_recipe(cfg)
        reports[name] = (path, json.loads((path.parent / "report.json").read_text()))
    (_, a), (second, b) = reports["recipe_tiny_ddpm"], reports["recipe_guidance"]
    assert [t["reused"] for t in a["trainings"]] == [False]
    assert [t["reused"] for t in b["trainings"]] == [True]
    shared = Path(a["trainings"][0]["run_dir"])
    assert Path(b["trainings"][0]["run_dir"]) == shared
    assert shared.parent == tmp_path / "recipe_runs"
    assert len(list(shared.glob("checkpoints/last.ckpt"))) == 1
    assert (second.parent / "model").resolve() == shared.resolve()
    assert "reused, trained by an earlier recipe" in second.read_text()
    # a folder whose training never finished is trained on, not reused
    (shared / "metrics.json").unlink()
    cfg = make_cfg("experiment=recipe_guidance", *TINY, *RECIPES["recipe_guidance"][0],
                   f"paths.cache_dir={shared_cache}", run_dir=tmp_path / "again")
    path = run_recipe(cfg)
    again = json.loads((path.parent / "report.json").read_text())
    assert [t["reused"] for t in again["trainings"]] == [False]
    assert (shared / "metrics.json").is_file()
