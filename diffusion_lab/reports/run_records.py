"""Read what a finished run left on disk: logger histories, metrics, guidance sweeps, grids.

Every reader takes a run directory (the folder holding ``.hydra/``) and never needs the
logger's service: the CSV logger's ``csv/metrics.csv``, W&B's transaction log
(``wandb/*run-*/run-*.wandb``, decoded with W&B's own protobuf ``Record``) and TensorBoard
event files (TensorBoard's ``EventAccumulator``). A file that cannot be read adds a line to
``notes`` instead of raising.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

History = dict[str, list[tuple[int, float]]]

# W&B's transaction log is a LevelDB-style log: a 7-byte file header (":W&B", magic 0xBEE1,
# version 0), then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type).
_WANDB_IDENT, _WANDB_MAGIC, _BLOCK = b":W&B", 0xBEE1, 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_csv_history(path: Path) -> History:
    """Lightning CSVLogger's metrics.csv: sparse rows keyed by ``step``."""
    history: History = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if not step:
                continue
            for key, cell in row.items():
                if key == "step" or key is None or cell in (None, ""):
                    continue
                try:
                    history.setdefault(key, []).append((int(float(step)), float(cell)))
                except ValueError:
                    continue
    return history


def wandb_chunks(path: Path):
    """Yield the raw records of a W&B transaction log; raises ValueError on a foreign file."""
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7]) if len(data) >= 7 else (b"", 0, 0)
    if ident != _WANDB_IDENT or magic != _WANDB_MAGIC or version != 0:
        raise ValueError(f"not a W&B transaction log (header {data[:7]!r})")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        room = _BLOCK - pos % _BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if room < 7 or (kind == 0 and length == 0):  # block trailer / zero padding
            pos += room
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            pending = b""  # truncated (run still writing) or damaged chunk: skip it
            continue
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _wandb_history_items(path: Path):
    """{key: value} of each history record, decoded with W&B's protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in wandb_chunks(path):
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            items = {}
            for item in record.history.item:
                with contextlib.suppress(ValueError):
                    items[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            yield items


def _wandb_leet_items(path: Path):
    """The same through W&B's own CLI reader (``wandb leet inspect --json``, wandb-core)."""
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    for line in out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("type") == "history":
            yield record["history"].get("item", {})


def read_wandb_history(path: Path) -> History:
    """History records of one ``.wandb`` file, stepped by Lightning's ``trainer/global_step``.

    Decoded in-process; a log whose framing this reader does not know goes through W&B's CLI.
    """
    try:
        records = list(_wandb_history_items(path))
    except ValueError as e:  # a header this reader does not know (a future format version)
        try:
            records = list(_wandb_leet_items(path))
        except (OSError, ValueError, subprocess.SubprocessError):
            raise ValueError(f"{e}; `wandb leet inspect` could not read it either") from None
    history: History = {}
    for items in records:
        step = _number(items.get("trainer/global_step", items.get("_step")))
        for key, value in items.items():
            value = _number(value)
            if None not in (step, value) and not key.startswith("_") and key != "trainer/global_step":
                history.setdefault(key, []).append((int(step), value))
    return history


def read_tensorboard_history(logdir: Path) -> History:
    """Scalars of the event files in one directory."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def logger_sources(run_dir: Path) -> list[tuple[str, Path]]:
    """(kind, path) of every logger file this run has: csv, wandb and tensorboard."""
    run_dir = Path(run_dir)
    found = [("csv", p) for p in sorted(run_dir.glob("csv/**/metrics.csv"))]
    for pattern in ("wandb/offline-run-*/run-*.wandb", "wandb/run-*/run-*.wandb"):
        found += [("wandb", p) for p in sorted(run_dir.glob(pattern)) if not p.parent.is_symlink()]
    event_dirs = sorted({p.parent for p in run_dir.glob("tensorboard/**/events.out.tfevents.*")})
    return found + [("tensorboard", d) for d in event_dirs]


_READERS = {"csv": read_csv_history, "wandb": read_wandb_history,
            "tensorboard": read_tensorboard_history}


def load_history(run_dir: Path, notes: list[str] | None = None) -> History:
    """Every scalar the run's loggers recorded: {key: [(step, value), ...]} sorted by step."""
    notes = notes if notes is not None else []
    history: History = {}
    sources = logger_sources(run_dir)
    if not sources:
        notes.append("no logger files (csv/, wandb/, tensorboard/): no curves for this run")
    for kind, path in sources:
        try:
            part = _READERS[kind](path)
        except Exception as e:  # noqa: BLE001 - a format we cannot read is a note, not fatal
            notes.append(f"could not read {kind} log {path.relative_to(run_dir)}: "
                         f"{type(e).__name__}: {e}")
            continue
        for key, points in part.items():
            history.setdefault(key, []).extend(points)
    return {k: sorted(v, key=lambda p: p[0]) for k, v in history.items()}


def flatten(obj, prefix: str = "") -> dict:
    """Nested dicts to dotted keys; lists and scalars are leaves."""
    if not isinstance(obj, dict) or (prefix and not obj):
        return {prefix: obj}
    flat = {}
    for key, value in obj.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def load_config(run_dir: Path, notes: list[str]) -> tuple[dict, list[str]]:
    """The run's flattened ``.hydra/config.yaml`` (interpolations as written) and its overrides."""
    from omegaconf import OmegaConf

    hydra_dir = Path(run_dir) / ".hydra"
    try:
        config = OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"), resolve=False)
    except Exception as e:  # noqa: BLE001 - unreadable YAML or file: a note
        notes.append(f".hydra/config.yaml is unreadable: {e}")
        config = {}
    overrides: list[str] = []
    if (hydra_dir / "overrides.yaml").is_file():
        try:
            overrides = [str(o) for o in OmegaConf.to_container(
                OmegaConf.load(hydra_dir / "overrides.yaml")) or []]
        except Exception as e:  # noqa: BLE001 - unreadable YAML or file: a note
            notes.append(f".hydra/overrides.yaml is unreadable: {e}")
    return flatten(config or {}), overrides


def read_metrics(run_dir: Path, notes: list[str] | None = None) -> dict:
    """metrics.json (final loss, accuracy, FID, ...), {} when absent or unreadable."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        if notes is not None:
            notes.append(f"metrics.json is unreadable: {e}")
        return {}
    return data if isinstance(data, dict) else {}


def _step_of(path: Path) -> int:
    match = re.search(r"step(\d+)", path.stem)
    return int(match.group(1)) if match else -1


def _column(columns: list[str], *names: str) -> int | None:
    """Index of the first column called one of ``names`` (else starting with one of them)."""
    lowered = [str(c).lower() for c in columns]
    for match in (str.__eq__, str.startswith):
        for name in names:
            hits = [i for i, col in enumerate(lowered) if match(col, name)]
            if hits:
                return hits[0]
    return None


def _sweep_table(path: Path) -> dict | None:
    table = json.loads(path.read_text())
    columns, rows = list(table["columns"]), [list(r) for r in table["rows"]]
    idx = {"w": _column(columns, "w", "guidance_scale", "scale"), "fid": _column(columns, "fid"),
           "accuracy": _column(columns, "accuracy", "acc"),
           "num_samples": _column(columns, "num_samples"), "sampler": _column(columns, "sampler"),
           "nfe": _column(columns, "nfe")}
    if idx["w"] is None:
        return None
    out: dict = {"step": _step_of(path), **{name: [] for name in idx}}
    for row in sorted(rows, key=lambda r: _number(r[idx["w"]]) or 0.0):
        for name, i in idx.items():
            value = row[i] if i is not None and i < len(row) else None
            if name != "sampler":
                value = _number(value)
                value = value if value is not None and math.isfinite(value) else None
            out[name].append(value)
    return out


def read_guidance_sweep(run_dir: Path, notes: list[str] | None = None) -> dict | None:
    """The latest guidance-sweep table (``media/guidance_sweep_table_step<N>.json``, columns
    w, fid, accuracy, num_samples, ...) as {"step": N, "w": [...], "fid": [...], ...}."""
    tables = sorted(Path(run_dir).glob("media/*guidance_sweep*_step*.json"), key=_step_of)
    for path in reversed(tables):
        try:
            sweep = _sweep_table(path)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            if notes is not None:
                notes.append(f"guidance sweep table {path.name} is unreadable: {e}")
            continue
        if sweep is not None:
            return sweep
    return None


def eval_points(metrics: dict, prefix: str) -> dict[float, float]:
    """{w: value} from metrics.json keys like ``fid_classifier_w1`` / ``sample_accuracy_w3``."""
    points = {}
    for key, value in metrics.items():
        match = re.fullmatch(re.escape(prefix) + r"_w([0-9.eE+-]+)", key)
        if match and _number(value) is not None:
            try:
                points[float(match.group(1))] = float(value)
            except ValueError:
                continue
    return dict(sorted(points.items()))


def final_grid(run_dir: Path) -> tuple[Path, str] | None:
    """The last sample grid (highest step), else the evaluation samples, else samples.png."""
    run_dir = Path(run_dir)
    grids = sorted(run_dir.glob("media/samples_grid/step*.png"), key=_step_of)
    if grids:
        return grids[-1], f"samples_grid, step {_step_of(grids[-1])}"
    evals = sorted(run_dir.glob("eval_samples_w*.png"))
    if evals:
        return evals[0], evals[0].name
    if (run_dir / "samples.png").is_file():
        return run_dir / "samples.png", "samples.png"
    return None
