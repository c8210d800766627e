"""Read what a finished run left in its own folder: scalars, metrics, guidance sweeps, grids.

Every reader takes a run directory (the folder holding ``.hydra/``) and reads only the records
the run writes there whatever experiment logger it used (``diffusion_lab.loggers.run_record``
and ``diffusion_lab.loggers.media``): ``media/scalars.jsonl``, ``media/*.json`` tables,
``metrics.json``, PNGs. A file that cannot be read adds a line to ``notes`` instead of raising.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from diffusion_lab.loggers.run_record import SCALARS_FILE

History = dict[str, list[tuple[int, float]]]

#: files whose presence shows that a folder holds a run that got past validation
RECORD_FILES = (str(SCALARS_FILE), "metrics.json", "sample_info.json")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def has_records(run_dir: Path) -> bool:
    """True when the run wrote any record (scalars, metrics, samples, a checkpoint); False for
    a folder Hydra made for a run that was refused (bad config) or killed before step 0."""
    run_dir = Path(run_dir)
    return (any((run_dir / name).is_file() for name in RECORD_FILES)
            or any(run_dir.glob("checkpoints/*.ckpt")))


def load_history(run_dir: Path, notes: list[str] | None = None) -> History:
    """Every scalar the run recorded (``media/scalars.jsonl``): {key: [(step, value), ...]}
    sorted by step. Lines that are not JSON (one cut short by a crash) are skipped with a note."""
    notes = notes if notes is not None else []
    path = Path(run_dir) / SCALARS_FILE
    if not path.is_file():
        notes.append(f"no {SCALARS_FILE}: no curves for this run")
        return {}
    history: History = {}
    bad = 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            step = int(record.pop("step"))
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
            continue
        for key, value in record.items():
            value = _number(value)
            if value is not None:
                history.setdefault(key, []).append((step, value))
    if bad:
        notes.append(f"{bad} unreadable line(s) in {SCALARS_FILE} skipped")
    return {k: sorted(v, key=lambda p: p[0]) for k, v in history.items()}


def run_logger(config: dict) -> str:
    """The experiment logger a run was configured with ('csv', 'wandb', ..., 'none'), from
    its flattened config."""
    target = config.get("logger._target_")
    if not target:
        return "none"
    name = str(target).rsplit(".", 1)[-1].lower()
    return {"csvlogger": "csv", "tensorboardlogger": "tensorboard",
            "wandb_logger": "wandb", "wandblogger": "wandb"}.get(name, name)


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
