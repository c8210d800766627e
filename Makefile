# diffusion-lab: `make train` and `make test` install what is missing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers, one per core (at most 4): much of the suite is single-threaded (each test
# process starts Python, torch and Lightning anew, ~10 s of one core); a test file stays on one
# worker (its fixtures are built once). TEST_WORKERS= runs the suite in one process.
TEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadscope --no-loadscope-reorder

.PHONY: help install train sample evaluate recipes test test-fast bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,cluster,bench]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project (pinned by constraints.txt)

train: $(STAMP)  ## train the default experiment (Hydra overrides: ARGS="schedule=cosine ...")
	$(PY) scripts/train.py $(ARGS)

sample: $(STAMP)  ## sample from a checkpoint: ARGS="ckpt=outputs/.../last.ckpt sampler=ddim"
	$(PY) scripts/sample.py $(ARGS)

evaluate: $(STAMP)  ## metrics from a checkpoint: ARGS="ckpt=..."
	$(PY) scripts/evaluate.py $(ARGS)

RECIPES := tiny_ddpm schedules ddim_vs_ddpm guidance dead_time_embedding duplication
recipes: $(STAMP)  ## the six recipes at full size in turn (shared trainings), then docs/recipes/
	@set -e; for r in $(RECIPES); do $(PY) scripts/recipe.py experiment=recipe_$$r $(ARGS); done
	$(PY) scripts/recipes_docs.py

test: $(STAMP)  ## the whole test suite, slow end-to-end runs included
	$(PY) -m pytest -q $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the quick subset (no slow end-to-end runs)
	$(PY) -m pytest -q $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## print benchmark figures
	$(PY) scripts/benchmark.py $(ARGS)

lint: $(STAMP)  ## ruff
	$(PY) -m ruff check diffusion_lab scripts tests

clean:  ## remove run outputs and caches (keeps .venv)
	rm -rf outputs/* multirun wandb .pytest_cache .ruff_cache .cache
	@touch outputs/.gitkeep
