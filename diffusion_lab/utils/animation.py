"""Animations as files that open anywhere, with Pillow only (no moviepy, imageio or ffmpeg).

* :func:`save_gif`: an animated GIF (loops; the last frame, the samples, held longer).
* :func:`html_player`: one self-contained HTML page, every frame inlined as a base64 PNG and a
  range slider (plus a play button) over them, with the frame's noise level beside it. No
  script, style or image is fetched: the page works from a local file, without a network.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: how many frame durations the last frame is held for, so the result can be looked at
HOLD_LAST = 4


def _check(frames: Sequence[np.ndarray]) -> None:
    if not frames:
        raise ValueError("an animation needs at least one frame")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"all frames must have one shape, got {sorted(shapes)}")


def _atomic_write(data: bytes, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def gif_bytes(frames: Sequence[np.ndarray], fps: float = 4.0) -> bytes:
    """uint8 (H, W, 3) frames -> animated GIF, looping, ``fps`` frames per second."""
    _check(frames)
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    ms = max(20, round(1000 / fps))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=[ms] * (len(images) - 1) + [ms * HOLD_LAST], disposal=1)
    return buf.getvalue()


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 4.0) -> Path:
    """Write :func:`gif_bytes` to ``path`` atomically."""
    return _atomic_write(gif_bytes(frames, fps), path)


def png_data_uri(frame: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}} img{{max-width:100%}}
#bar{{display:flex;gap:1em;align-items:center}} #pos{{width:40em}}</style></head>
<body><h3>{title}</h3><p>{caption}</p>
<div id="bar"><button id="play">play</button>
<input id="pos" type="range" min="0" max="{last}" value="0" step="1">
<span id="label"></span></div>
<img id="frame" alt="frame">
<script>
const frames = {frames};
const labels = {labels};
const img = document.getElementById("frame"), pos = document.getElementById("pos"),
      label = document.getElementById("label"), play = document.getElementById("play");
let timer = null;
function show(k) {{ pos.value = k; img.src = frames[k]; label.textContent = labels[k]; }}
pos.addEventListener("input", () => show(+pos.value));
play.addEventListener("click", () => {{
  if (timer) {{ clearInterval(timer); timer = null; play.textContent = "play"; return; }}
  play.textContent = "pause";
  timer = setInterval(() => show((+pos.value + 1) % frames.length), {ms});
}});
show(0);
</script></body></html>
"""


def html_player(frames: Sequence[np.ndarray], frame_labels: Sequence[str], title: str,
                caption: str = "", fps: float = 4.0) -> str:
    """A self-contained page: ``frames`` inlined as PNG data URIs, a slider over them showing
    ``frame_labels[k]`` (e.g. the noise level) beside frame k, and a play button."""
    import json

    _check(frames)
    if len(frame_labels) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(frame_labels)} labels")
    return _PAGE.format(
        title=html.escape(title), caption=html.escape(caption), last=len(frames) - 1,
        frames=json.dumps([png_data_uri(f) for f in frames]),
        labels=json.dumps([str(s) for s in frame_labels]).replace("</", "<\\/"),
        ms=max(20, round(1000 / fps)))


def save_html_player(frames: Sequence[np.ndarray], frame_labels: Sequence[str],
                     path: str | os.PathLike, title: str, caption: str = "",
                     fps: float = 4.0) -> Path:
    """Write :func:`html_player` to ``path`` atomically."""
    page = html_player(frames, frame_labels, title, caption, fps)
    return _atomic_write(page.encode("utf-8"), path)
