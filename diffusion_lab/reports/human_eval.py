"""Blind side-by-side human evaluation of two sample sets, and its tally.

FID and classifier scores are hints; what a person sees is the verdict (a model can match the
feature statistics and still draw smeared strokes). :func:`write_page` turns two ``samples.npz``
files of ``scripts/sample.py`` into one self-contained HTML page of paired images: image i of A
beside image i of B, drawn from the same noise and class (the same seed and index), each pair's
sides shuffled with a seeded coin. The rater clicks the better image (or "same") and downloads
``votes.json``; the page never names the sets, and which side is which is kept in ``key.json``
beside it, not in the page.

:func:`tally` reads the key and any number of raters' votes: A's wins, B's wins and ties; A's
share of the decided pairs p = a / (a + b) with its 95% Wilson interval

    (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),   n = a + b, z = 1.96,

and the two-sided sign test of "no preference": P = min(1, 2 P(X <= min(a, b))), X ~ Bin(n, 1/2).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from pathlib import Path

import numpy as np
import torch

from diffusion_lab.utils.animation import png_data_uri
from diffusion_lab.utils.images import to_uint8

__all__ = ["HumanEvalError", "sign_test_p", "tally", "wilson_interval", "write_page"]

CHOICES = ("left", "right", "same")


class HumanEvalError(ValueError):
    """Input the page or the tally cannot use (one line, for exit 2)."""


def _load_samples(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            x, labels = data["x"], data.get("labels")
    except (OSError, ValueError, KeyError) as e:
        raise HumanEvalError(f"{path}: not a samples.npz of scripts/sample.py ({e})") from None
    if x.ndim != 4:
        raise HumanEvalError(f"{path}: needs images (N, C, H, W), got shape {x.shape}")
    if labels is not None and len(labels) == 0:
        labels = None
    return x, labels


def write_page(a_path: Path, b_path: Path, out_dir: Path, *, pairs: int | None = None,
               seed: int = 0, names: tuple[str, str] = ("A", "B"), size: int = 128) -> dict:
    """``out_dir/index.html`` (the page) and ``out_dir/key.json`` (which side holds A, per
    pair) for the first ``pairs`` images of both sets (all by default); returns the key."""
    xa, la = _load_samples(Path(a_path))
    xb, lb = _load_samples(Path(b_path))
    if xa.shape[1:] != xb.shape[1:]:
        raise HumanEvalError(f"the two sets hold different image shapes: {xa.shape[1:]} and "
                             f"{xb.shape[1:]}")
    n = min(len(xa), len(xb)) if pairs is None else pairs
    if n < 1 or n > min(len(xa), len(xb)):
        raise HumanEvalError(f"pairs must be in [1, {min(len(xa), len(xb))}], got {n}")
    if la is not None and lb is not None and not np.array_equal(la[:n], lb[:n]):
        i = int(np.nonzero(la[:n] != lb[:n])[0][0])
        raise HumanEvalError(f"the sets are not paired: image {i} is class {la[i]} in A and "
                             f"{lb[i]} in B (sample both with the same seed and classes)")
    a_left = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5
    upscale = max(1, size // xa.shape[-1])
    ua, ub = to_uint8(torch.from_numpy(xa[:n])), to_uint8(torch.from_numpy(xb[:n]))
    digest = hashlib.sha256()
    cells = []
    for i in range(n):
        left, right = (ua[i], ub[i]) if a_left[i] else (ub[i], ua[i])
        left, right = (im.repeat(upscale, 0).repeat(upscale, 1) for im in (left, right))
        digest.update(left.tobytes() + right.tobytes())
        cells.append((png_data_uri(_rgb(left)), png_data_uri(_rgb(right))))
    page_id = digest.hexdigest()[:16]
    key = {"page_id": page_id, "names": list(names), "a_path": str(a_path), "b_path": str(b_path),
           "pairs": n, "seed": seed, "a_is_left": a_left.tolist()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.html").write_text(_page_html(page_id, cells))
    (out_dir / "key.json").write_text(json.dumps(key, indent=1))
    return key


def _rgb(image: np.ndarray) -> np.ndarray:
    return image.repeat(3, axis=2) if image.shape[2] == 1 else image


def _page_html(page_id: str, cells: list[tuple[str, str]]) -> str:
    rows = "\n".join(
        f'<div class="pair" id="p{i}"><span class="n">{i + 1}</span>'
        f'<img src="{left}" data-i="{i}" data-c="left" alt="left image {i + 1}">'
        f'<img src="{right}" data-i="{i}" data-c="right" alt="right image {i + 1}">'
        f'<button data-i="{i}" data-c="same">same</button></div>'
        for i, (left, right) in enumerate(cells))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Which image is better?</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.pair {{ display: flex; align-items: center; gap: 1em; margin: 0.6em 0; }}
.pair img {{ image-rendering: pixelated; border: 4px solid transparent; cursor: pointer; }}
.pair img.chosen, .pair button.chosen {{ border-color: #1a7f37; background: #dafbe1; }}
.n {{ width: 2.5em; text-align: right; color: #666; }}
#bar {{ position: sticky; top: 0; background: white; padding: 0.5em 0; }}
</style></head><body>
<div id="bar"><b>Click the better image of each pair</b> (or "same"). Judge the image itself:
is it a clean, recognisable example of the data? <span id="count">0</span> / {len(cells)} done.
<button id="save">download votes.json</button></div>
{rows}
<script>
const pageId = {json.dumps(page_id)};
const votes = {{}};
function mark(i, c) {{
  votes[i] = c;
  document.querySelectorAll('#p' + i + ' [data-c]').forEach(
    el => el.classList.toggle('chosen', el.dataset.c === c));
  document.getElementById('count').textContent = Object.keys(votes).length;
}}
document.querySelectorAll('[data-c]').forEach(
  el => el.addEventListener('click', () => mark(Number(el.dataset.i), el.dataset.c)));
document.getElementById('save').addEventListener('click', () => {{
  const list = Object.entries(votes).map(([i, c]) => ({{pair: Number(i), choice: c}}));
  const blob = new Blob([JSON.stringify({{page_id: pageId, votes: list}}, null, 1)],
                        {{type: 'application/json'}});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'votes.json';
  link.click();
}});
</script>
<p style="color:#666">page {html.escape(page_id)}</p>
</body></html>
"""


def wilson_interval(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion wins / n (see the module docstring)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def sign_test_p(a: int, b: int) -> float:
    """Two-sided exact sign test of a wins against b: min(1, 2 P(X <= min(a, b))),
    X ~ Binomial(a + b, 1/2); 1 when nothing was decided."""
    n = a + b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a, b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def tally(key_path: Path, vote_paths: list[Path]) -> dict:
    """A's and B's wins and the ties over every rater's votes (each pair counted once per
    rater: a rater's last vote on it), with A's share, its Wilson interval and the sign test."""
    try:
        key = json.loads(Path(key_path).read_text())
        a_is_left, page_id, names = key["a_is_left"], key["page_id"], key["names"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HumanEvalError(f"{key_path}: not a key.json of this page maker ({e})") from None
    counts = {"a": 0, "b": 0, "same": 0}
    raters = []
    for path in vote_paths:
        try:
            votes = json.loads(Path(path).read_text())
            entries = {int(v["pair"]): v["choice"] for v in votes["votes"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HumanEvalError(f"{path}: not a votes.json of the page ({e})") from None
        if votes.get("page_id") != page_id:
            raise HumanEvalError(f"{path}: votes of page {votes.get('page_id')}, the key is of "
                                 f"page {page_id}")
        mine = {"a": 0, "b": 0, "same": 0}
        for pair, choice in entries.items():
            if not 0 <= pair < len(a_is_left) or choice not in CHOICES:
                raise HumanEvalError(f"{path}: pair {pair} / choice {choice!r} is not on the page")
            if choice == "same":
                mine["same"] += 1
            else:
                mine["a" if (choice == "left") == a_is_left[pair] else "b"] += 1
        raters.append({"votes": str(path), **mine})
        for k in counts:
            counts[k] += mine[k]
    decided = counts["a"] + counts["b"]
    low, high = wilson_interval(counts["a"], decided)
    return {"names": names, "pairs": len(a_is_left), "raters": raters,
            f"{names[0]}_wins": counts["a"], f"{names[1]}_wins": counts["b"],
            "same": counts["same"], "decided": decided,
            f"{names[0]}_share": counts["a"] / decided if decided else None,
            f"{names[0]}_share_95ci": [low, high],
            "sign_test_p": sign_test_p(counts["a"], counts["b"])}
