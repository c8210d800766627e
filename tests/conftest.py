"""Shared fixtures: Hydra config composition into a temporary run directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


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
