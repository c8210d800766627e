"""A rich progress bar for long loops outside the Lightning trainer (sampling, metrics).

    with progress_bar("sampling", total=steps) as advance:
        ...; advance()

Disabled (a no-op) when ``description`` is None, on ranks other than 0, or with
DIFFUSION_LAB_PROGRESS=0 in the environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator


def _enabled(description: str | None, total: int) -> bool:
    if description is None or total <= 0 or os.environ.get("DIFFUSION_LAB_PROGRESS", "1") == "0":
        return False
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


@contextlib.contextmanager
def progress_bar(description: str | None, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n=1)``; draw a bar with count, elapsed and remaining time on stderr."""
    if not _enabled(description, total):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
