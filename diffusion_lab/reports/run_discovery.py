"""Which folders under the given paths hold runs, and which of those ever trained."""

from __future__ import annotations

import os
import re
from pathlib import Path

from diffusion_lab.reports.run_records import has_records


class CompareError(Exception):
    """A user error: a path that does not exist, or no run directories found."""


def discover_runs(paths) -> list[Path]:
    """Run directories at or under each path (a run, a multirun or an experiment directory)."""
    found: list[Path] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise CompareError(f"no such file or directory: {raw}")
        runs = []
        for dirpath, dirnames, _ in os.walk(root):
            if (Path(dirpath) / ".hydra" / "config.yaml").is_file():
                runs.append(Path(dirpath).resolve())
                dirnames.clear()  # a run does not hold other runs
            else:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        runs.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))])
        found += [r for r in runs if r not in found]  # multirun jobs 0, 1, ..., 10 in order
    if not found:
        raise CompareError("no run directories (folders with .hydra/config.yaml) under "
                           + ", ".join(str(p) for p in paths))
    return found


def run_labels(paths: list[Path]) -> list[str]:
    """Short names: each path relative to the runs' common parent."""
    if len(paths) == 1:
        return [paths[0].name]
    common = Path(os.path.commonpath([str(p) for p in paths]))
    return [str(p.relative_to(common)) or p.name for p in paths]


def split_trained(found: list[Path]) -> tuple[list[Path], list[Path]]:
    """(runs with records, folders of runs that never trained), each in the given order."""
    trained = [p for p in found if has_records(p)]
    return trained, [p for p in found if p not in trained]
