"""Best configuration of one method within each NFE budget, the same procedure for both libraries.

Stage 1: every grid configuration at the largest step count that fits each budget. Stage 2: the
``keep`` best grid configurations of each budget, combined with every end configuration, at each of
the ``depth`` largest step counts that fit. The lowest error wins. A configuration that raises (a
combination the library refuses) or returns a non-finite error is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

REFUSED = (ValueError, IndexError, RuntimeError, AssertionError, KeyError, TypeError,
           NotImplementedError, ZeroDivisionError, ImportError)


@dataclass
class Result:
    method: str
    config: str
    steps: int
    nfe: int
    error: float
    options: dict = field(default_factory=dict)  # the configuration itself (``config`` describes it)


def describe(cfg: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items()) or "defaults"


def steps_within(nfe_of: Callable[[dict, int], int], cfg: dict, budget: int, depth: int) -> list:
    """The ``depth`` largest (steps, nfe) with nfe <= budget (searching steps budget..1)."""
    found = []
    for steps in range(budget, 0, -1):
        try:
            nfe = nfe_of(cfg, steps)
        except REFUSED:
            continue
        if nfe <= budget:
            found.append((steps, nfe))
            if len(found) == depth:
                break
    return found


def best_within(
    method: str,
    evaluate: Callable[[dict, int], float],
    nfe_of: Callable[[dict, int], int],
    grid: Sequence[dict],
    end: Sequence[dict],
    budgets: Sequence[int],
    keep: int = 3,
    depth: int = 3,
) -> dict[int, Result]:
    """{budget: best Result} of one method (missing budgets: nothing fits)."""

    def score(cfg: dict, steps: int) -> float:
        try:
            err = evaluate(cfg, steps)
        except REFUSED:
            return math.inf
        return err if math.isfinite(err) else math.inf

    out: dict[int, Result] = {}
    for budget in budgets:
        ranked = []
        for cfg in grid:
            fits = steps_within(nfe_of, cfg, budget, 1)
            if fits:
                ranked.append((score(cfg, fits[0][0]), cfg))
        ranked.sort(key=lambda r: r[0])
        best: Result | None = None
        for _, cfg in ranked[:keep]:
            for extra in end or [{}]:
                full = {**cfg, **extra}
                for steps, nfe in steps_within(nfe_of, full, budget, depth):
                    err = score(full, steps)
                    if err < math.inf and (best is None or err < best.error):
                        best = Result(method, describe(full), steps, nfe, err, full)
        if best is not None:
            out[budget] = best
    return out
