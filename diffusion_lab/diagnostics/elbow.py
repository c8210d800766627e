"""The elbow (knee) of a measured curve, found automatically (Kneedle, Satopaa et al. 2011).

Both axes are scaled to [0, 1] over the measured range; the elbow is the point farthest from
the straight line joining the first and last points,

    i* = argmax_i |(x_i - x_0)(y_n - y_0) - (y_i - y_0)(x_n - x_0)|   (scaled coordinates),

i.e. where the curve bends most before (or after) changing its rate. For FID against the
guidance scale w (which first falls, then climbs as samples lose diversity) it marks the w
beyond which more guidance stops paying.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def elbow(xs: Sequence[float], ys: Sequence[float]) -> tuple[int, float]:
    """(index of the elbow, its distance from the chord in scaled units); needs >= 3 points
    with increasing x. A straight line has no elbow: every distance is 0 (index 0 returned)."""
    if len(xs) != len(ys) or len(xs) < 3:
        raise ValueError("elbow needs >= 3 points with as many xs as ys")
    if any(b <= a for a, b in itertools.pairwise(xs)):
        raise ValueError(f"xs must increase, got {list(xs)}")
    lo_y, hi_y = min(ys), max(ys)
    span_y = (hi_y - lo_y) or 1.0
    px = [(x - xs[0]) / (xs[-1] - xs[0]) for x in xs]
    py = [(y - lo_y) / span_y for y in ys]
    dx, dy = px[-1] - px[0], py[-1] - py[0]
    norm = (dx * dx + dy * dy) ** 0.5
    dist = [abs((px[i] - px[0]) * dy - (py[i] - py[0]) * dx) / norm for i in range(len(xs))]
    best = max(range(len(xs)), key=dist.__getitem__)
    return best, dist[best]
