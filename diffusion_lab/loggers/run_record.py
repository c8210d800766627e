"""The run's own record of its scalars, kept whatever experiment logger the run uses.

Every scalar the run logs (Lightning's ``self.log``, the callbacks' ``log_scalars``, the
end-of-run evaluation) is appended as one JSON line to ``<run_dir>/media/scalars.jsonl``::

    {"step": 120, "train/loss": 0.041, "epoch": 3.0}

beside the PNGs and JSON tables of ``diffusion_lab.loggers.media``. Run reports
(``diffusion_lab.reports``) read only these files, so they work the same for W&B, TensorBoard,
CSV or no logger. Each line is flushed as it is written; a line cut short by a crash is the
only one a reader can lose.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

SCALARS_FILE = Path("media") / "scalars.jsonl"


def append_scalars(run_dir: str | Path, step: int, metrics: dict[str, float]) -> Path:
    """Append {"step": step, **metrics} to the run's scalars file (floats; NaN and infinities
    as Python's json writes and reads them)."""
    path = Path(run_dir) / SCALARS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
    return path


class RunRecordLogger(Logger):
    """A Lightning logger that only appends scalars to ``<save_dir>/media/scalars.jsonl``.

    The train task attaches it after the configured logger (so that logger stays
    ``trainer.logger`` and keeps deciding the checkpoint folder); global rank 0 writes."""

    def __init__(self, save_dir: str | Path) -> None:
        super().__init__()
        self._save_dir = str(save_dir)

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return self._save_dir

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        scalars = {k: v for k, v in metrics.items() if _is_scalar(v)}
        if scalars:
            append_scalars(self._save_dir, step if step is not None else -1, scalars)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The config is already the run's ``.hydra/config.yaml``."""


def _is_scalar(value) -> bool:
    if hasattr(value, "numel"):
        return value.numel() == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)
