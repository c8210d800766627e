"""Shared fixtures: Hydra config composition into a temporary run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite on pytest-xdist workers, one per core: each worker, and every
    # process it starts, gets its share of the cores rather than all of them (no oversubscription).
    import torch

    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(_share)
    torch.set_num_threads(_share)


def compose_config(config_name: str, overrides: list[str], run_dir: Path):
    """Compose conf/<config_name>.yaml with overrides, as scripts/ would, outside @hydra.main."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name=config_name,
            overrides=[
                *overrides,
                f"paths.run_dir={run_dir}",
                f"paths.output_root={run_dir.parent}",
            ],
        )


def refusal_line(script: str, *args: str, cwd: Path) -> str:
    """Run ``scripts/<script> args`` as a user would; it must refuse with exit status 2. Returns
    the last line of its stderr, the one-line refusal."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                          capture_output=True, text=True, check=False, cwd=cwd, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture
def make_cfg(tmp_path, monkeypatch):
    """make_cfg(*overrides, config_name="train") -> composed DictConfig writing under tmp_path."""
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "cache"))

    def _make(*overrides: str, config_name: str = "train", run_dir: Path | None = None):
        return compose_config(config_name, list(overrides), run_dir or tmp_path / "run")

    return _make


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache directory per test session (trained classifier reused across tests)."""
    return tmp_path_factory.mktemp("cache")


#: the test files that take longest (minutes each on 2 cores), run first so that parallel
#: workers (`make test`) start them at once instead of ending the session on one of them
LONGEST_FIRST = ("test_default_run.py", "test_readme_commands.py", "test_kill_soak.py",
                 "test_optimized_grid.py", "test_concurrent_load.py", "test_compare_runs.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
