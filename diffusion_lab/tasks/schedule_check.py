"""Train/sample schedule agreement for the sampling tasks (sample.py, evaluate.py, visualize.py).

A checkpoint records the schedule it was trained with by value (``diffusion_lab_schedule``,
see ``diagnostics/schedule_record.py``). Before any sample is drawn, two schedules must match
that record: the one rebuilt from the checkpoint's stored config (code or defaults may have
changed since) and one the user names on the command line (``+schedule=linear``). Either
mismatch is refused with one line (ConfigError: exit status 2). A checkpoint written before
records existed is sampled with a warning that nothing could be checked.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.diagnostics.schedule_record import schedule_mismatch
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.validate import refused_as_config_error

log = logging.getLogger(__name__)


def check_schedule_agreement(cfg: DictConfig, ckpt: dict, schedule, path="checkpoint") -> None:
    """ConfigError unless ``schedule`` (the model's) and ``cfg.schedule`` (when the user gave
    one) both equal the schedule recorded in ``ckpt``."""
    record = ckpt.get("diffusion_lab_schedule")
    if record is None:
        log.warning("%s holds no record of its training schedule (written by an older version): "
                    "sampling cannot check it uses the same noise levels", path)
        return
    problem = schedule_mismatch(record, schedule)
    if problem:
        raise ConfigError(f"{path}: the schedule its stored config builds is not the one it was "
                          f"trained with ({problem}); refusing to sample")
    stored = (ckpt.get("diffusion_lab_config") or {}).get("schedule")
    given = cfg.get("schedule")
    if given is None or OmegaConf.to_container(given, resolve=True) == stored:
        return
    with refused_as_config_error("schedule"):
        asked = instantiate(given)
    problem = schedule_mismatch(record, asked)
    if problem:
        raise ConfigError(f"schedule: {path} was trained with another noise schedule ({problem}); "
                          "drop the schedule override to sample with the trained one")
