"""What each experiment logger actually receives from the dashboard (loggers/media.py).

* W&B, offline: the files W&B itself writes are read back. Images and tables are plain files
  under ``<run_dir>/wandb/offline-run-*/files/media/{images,table}/<key>_<wandb step>_<hash>.*``.
  The history (every ``wandb.log`` row) exists only inside the run's ``run-<id>.wandb``
  transaction log, whose W&B reader is not part of the installed (Go-core) client, so
  :func:`wandb_history` reads it here: a 7-byte file header (``:W&B``, magic 0xBEE1, version
  0), then LevelDB-log records (32 KiB blocks; each record ``<uint32 crc, uint16 length,
  uint8 type>`` + payload; type FULL=1 or FIRST=2 / MIDDLE=3 / LAST=4 fragments; a block
  tail shorter than a header is zero padding), each payload a ``wandb.proto
  .wandb_internal_pb2.Record``; history rows are its ``history.item`` list of (key or
  nested_key, value_json).
* TensorBoard: the event file read by TensorBoard's ``EventAccumulator``.
* CSV / none: PNGs and JSON in ``<run_dir>/media`` regardless; CSV columns.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_callbacks import tiny_run

from diffusion_lab.loggers import media

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DASHBOARD_PNGS = [
    "samples_grid/step0000004.png",
    "xt_strip_reverse_xt/step0000004.png",
    "xt_strip_reverse_x0_hat/step0000004.png",
    "xt_strip_forward/step0000004.png",
    "loss_by_t_chart/step0000004.png",
    "guidance_sweep_fid_vs_w/step0000004.png",
    "guidance_sweep_accuracy_vs_w/step0000004.png",
    "guidance_sweep_samples/step0000004.png",
    "mode_coverage_histogram/step0000004.png",
]


def _records(path: Path):
    """Payloads of a W&B ``.wandb`` transaction log (format in the module docstring)."""
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), "not a W&B transaction log"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # zero padding at the end of a block
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield payload
        elif kind == 2:
            pending = payload
        elif kind == 3:
            pending += payload
        elif kind == 4:
            yield pending + payload
        elif kind == 0:  # preallocated, unwritten space
            pos += left - 7 - length


def wandb_history(run_file: Path) -> list[dict]:
    """The history rows of an offline W&B run, as {key: decoded value}."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for payload in _records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.HasField("history"):
            rows.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


# ----------------------------------------------------------------------------- media helpers


def fake_trainer(tmp_path, loggers=(), rank=0):
    return types.SimpleNamespace(default_root_dir=str(tmp_path), loggers=list(loggers),
                                 global_rank=rank)


class RecordingLogger:
    """A logger that is neither W&B nor TensorBoard: only scalars reach it."""

    def __init__(self):
        self.calls = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))


def test_media_helpers_write_png_and_json_and_send_scalars(tmp_path):
    rec = RecordingLogger()
    trainer = fake_trainer(tmp_path, [rec])
    png = media.log_line(trainer, "sweep/fid", [1, 3], {"fid": [2.0, 1.0]}, 7, "w", "FID",
                         title="FID vs w (20 samples)")
    assert png == tmp_path / "media" / "sweep_fid" / "step0000007.png"
    assert np.asarray(Image.open(png)).ndim == 3
    data = json.loads(png.with_suffix(".json").read_text())
    assert data["x"] == [1.0, 3.0] and data["series"] == {"fid": [2.0, 1.0]}
    bar = media.log_bar(trainer, "cov/hist", ["0", "1"], [3, 5], 7, "class", "count",
                        reference=[4, 4])
    assert json.loads(bar.with_suffix(".json").read_text())["reference"] == [4.0, 4.0]
    media.log_scalars(trainer, {"a": 1, "b": 2.5}, 7)
    assert rec.calls == [({"a": 1.0, "b": 2.5}, 7)]
    line = (tmp_path / "media" / "scalars.jsonl").read_text().strip()
    assert json.loads(line) == {"step": 7, "a": 1.0, "b": 2.5}
    # Other ranks write nothing and log nothing.
    other = fake_trainer(tmp_path / "rank1", [rec], rank=1)
    assert media.log_line(other, "x", [0], {"y": [0]}, 1, "x", "y") is None
    media.log_scalars(other, {"a": 1}, 1)
    assert len(rec.calls) == 1 and not (tmp_path / "rank1").exists()


# ----------------------------------------------------------------------------- real loggers


def test_wandb_offline_run_holds_images_tables_and_dashboard_history(tmp_path, shared_cache,
                                                                      monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    tiny_run(run_dir, shared_cache, "logger=wandb")
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    files = offline / "files" / "media"
    images = {p.relative_to(files / "images").as_posix().rsplit("_", 2)[0]
              for p in (files / "images").rglob("*.png")}
    assert {"samples/grid", "xt_strip/reverse_xt", "xt_strip/reverse_x0_hat",
            "xt_strip/forward", "guidance_sweep/samples"} <= images
    tables = {p.relative_to(files / "table").as_posix().rsplit("_", 2)[0]
              for p in (files / "table").rglob("*.table.json")}
    assert {"guidance_sweep/table", "guidance_sweep/fid_vs_w_table",
            "guidance_sweep/accuracy_vs_w_table", "loss_by_t/table", "loss_by_t/chart_table",
            "mode_coverage/table", "mode_coverage/histogram_table", "xt_strip/columns"} <= tables
    # The animation: wandb.Video of the GIF file (no moviepy/imageio needed), at both strips.
    videos = sorted((files / "videos" / "xt_strip").glob("animation_*.gif"))
    assert len(videos) == 2 and all(Image.open(v).n_frames > 1 for v in videos)
    (sweep_table,) = (files / "table" / "guidance_sweep").glob("table_*.table.json")
    sweep = json.loads(sweep_table.read_text())
    assert sweep["columns"][:4] == ["w", "fid", "accuracy", "num_samples"]
    assert [row[0] for row in sweep["data"]] == [1, 2, 3, 5, 7]
    assert all(row[3] == 20 for row in sweep["data"])

    (run_file,) = list(offline.glob("run-*.wandb"))
    history = wandb_history(run_file)
    keys = set().union(*history)
    for key in ("loss_by_t/bin_00", "loss_by_t/bin_09", "guidance_sweep/fid_w1",
                "guidance_sweep/accuracy_w7", "mode_coverage/entropy", "train/loss"):
        assert key in keys, key
    # Dashboard rows carry the training step (W&B's own step counter is never passed).
    strip_steps = [row["trainer/global_step"] for row in history
                   if "xt_strip/forward/path" in row]
    assert strip_steps == [2, 4]
    fid1 = [row["guidance_sweep/fid_w1"] for row in history if "guidance_sweep/fid_w1" in row]
    assert len(fid1) == 1 and np.isfinite(fid1[0])


def test_tensorboard_event_file_has_dashboard_images_and_scalars(tmp_path, shared_cache):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    tiny_run(run_dir, shared_cache, "logger=tensorboard")
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0,
                                                                          "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"samples/grid", "xt_strip/reverse_xt", "xt_strip/reverse_x0_hat",
            "xt_strip/forward", "loss_by_t/chart", "guidance_sweep/fid_vs_w",
            "guidance_sweep/accuracy_vs_w", "mode_coverage/histogram"} <= set(tags["images"])
    assert {"loss_by_t/bin_00", "guidance_sweep/fid_w1", "guidance_sweep/accuracy_w1",
            "mode_coverage/entropy"} <= set(tags["scalars"])
    assert [e.step for e in acc.Images("xt_strip/forward")] == [2, 4]
    # add_video needs moviepy (not a dependency); without it the first and last frames
    if importlib.util.find_spec("moviepy") is None:
        assert [e.step for e in acc.Images("xt_strip/animation/first_last")] == [2, 4]
    assert [e.step for e in acc.Scalars("loss_by_t/bin_00")] == [1, 2, 3, 4]
    assert "guidance_sweep/table/text_summary" in tags["tensors"]


def test_without_a_logger_every_callback_still_writes_its_files(tmp_path, shared_cache):
    run_dir = tmp_path / "run"
    tiny_run(run_dir, shared_cache, "logger=none")
    for rel in DASHBOARD_PNGS:
        assert (run_dir / "media" / rel).is_file(), rel
    for suffix in (".gif", ".html"):
        assert (run_dir / "media" / "xt_strip_animation" / f"step0000004{suffix}").is_file()
    for rel in ("guidance_sweep_table_step0000004.json", "mode_coverage_table_step0000004.json",
                "loss_by_t_table_step0000004.json", "xt_strip_columns_step0000004.json"):
        assert (run_dir / "media" / rel).is_file(), rel
    keys = set()
    for line in (run_dir / "media" / "scalars.jsonl").read_text().splitlines():
        keys |= set(json.loads(line))
    assert {"loss_by_t/bin_00", "guidance_sweep/fid_w1", "mode_coverage/entropy"} <= keys
    assert not (run_dir / "wandb").exists() and not (run_dir / "csv").exists()
