"""A rich progress bar for long loops outside the Lightning trainer (sampling, metrics).

    with progress_bar("sampling", total=steps) as advance:
        ...; advance()

Disabled (a no-op) when ``description`` is None, on ranks other than 0, or with
DIFFUSION_LAB_PROGRESS=0 in the environment. When stderr is not a terminal (a SLURM log, nohup,
a pipe), where a live bar would print nothing until the loop ends, it writes plain lines
instead: one at every tenth of the work and at least one a minute, each with the count, the
elapsed time and an estimate of the time left.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator

LINE_EVERY_S = 60.0  # plain lines: at least one a minute while the work advances
_clock = time.monotonic


def _enabled(description: str | None, total: int) -> bool:
    if description is None or total <= 0 or os.environ.get("DIFFUSION_LAB_PROGRESS", "1") == "0":
        return False
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def stderr_is_terminal() -> bool:
    """Whether a live bar can be drawn (else: plain lines, ``LineProgress``)."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(description: str | None, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n=1)``; draw a bar with count, elapsed and remaining time on stderr."""
    if not _enabled(description, total):
        yield lambda n=1: None
        return
    if not stderr_is_terminal():
        reporter = LineProgress(description, total)
        try:
            yield reporter.advance
        finally:
            reporter.close()
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


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LineProgress:
    """Progress as plain stderr lines, for logs: a line whenever the count crosses a tenth of
    ``total`` or ``LINE_EVERY_S`` has passed since the last line, and a last one at ``close``.
    ``done``: where the count starts (a resumed run); time left = elapsed * (total - done) /
    (done - the starting count). ``total=None``: no tenths, a line a minute."""

    def __init__(self, description: str, total: int | None, done: int = 0) -> None:
        self.description, self.total = description, total
        self.done = self.first = self.last_written = done
        self.start = self.last_line = _clock()
        self.last_tenth = self._tenth()
        self.suffix = ""

    def _tenth(self) -> int:
        return 0 if not self.total else min(10, 10 * self.done // self.total)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int, suffix: str = "") -> None:
        """Set the count (and the text after the times, e.g. the loss); write a line if due."""
        self.done, self.suffix = done, suffix
        tenth = self._tenth()
        if tenth > self.last_tenth or _clock() - self.last_line >= LINE_EVERY_S:
            self.last_tenth = max(self.last_tenth, tenth)
            self._write()

    def close(self) -> None:
        if self.done != self.last_written:
            self._write()

    def _write(self) -> None:
        now = _clock()
        elapsed = now - self.start
        count = f"{self.done}"
        if self.total:
            count += f"/{self.total} ({100 * self.done / self.total:.0f}%)"
        left = ""
        if self.total and self.first < self.done < self.total:
            left = f", ~{_clock_text(elapsed * (self.total - self.done) / (self.done - self.first))} left"
        suffix = f", {self.suffix}" if self.suffix else ""
        print(f"{self.description}: {count}, {_clock_text(elapsed)} elapsed{left}{suffix}",
              file=sys.stderr, flush=True)
        self.last_line, self.last_written = now, self.done
