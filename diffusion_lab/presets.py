"""The Hydra config tree's presets, read without Hydra's composition (OmegaConf only, light)."""

from __future__ import annotations

from pathlib import Path

#: the Hydra config tree (conf/ beside the package): the one place presets live
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def schedule_preset(name: str, num_steps: int):
    """conf/schedule/<name>.yaml with ``num_steps`` timesteps (a config to ``instantiate``)."""
    from omegaconf import OmegaConf

    path = CONF_DIR / "schedule" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no schedule preset {name!r} (no {path})")
    preset = OmegaConf.load(path)
    preset.num_steps = num_steps
    return preset
