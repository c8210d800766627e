"""scripts/compare_runs.py: one self-contained HTML report over real runs of scripts/train.py.

The two runs are trained by scripts/train.py itself (so ``.hydra/`` is Hydra's own), at the
same time: 4 steps each, linear schedule + CSV logger vs cosine schedule + W&B (offline).
"""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from diffusion_lab.reports.compare import (
    CompareError,
    config_diff,
    discover_runs,
    load_runs,
    write_report,
)
from diffusion_lab.reports.run_records import load_history, read_guidance_sweep, wandb_chunks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_train import FAST, SMALL_UNET

PNG = "data:image/png;base64,"
SWEEP = {"columns": ["w", "fid", "accuracy", "num_samples", "sampler", "nfe"],  # GuidanceSweep's
         "rows": [[3.0, 45.0, 0.8, 20, "dpmpp_2m", 3], [0.0, 60.0, 0.2, 20, "dpmpp_2m", 3],
                  [1.0, 40.0, 0.5, 20, "dpmpp_2m", 3]]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """{"csv": run_dir, "wandb": run_dir} under one output root."""
    out = tmp_path_factory.mktemp("outputs")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    jobs = {
        "csv": ["logger=csv", "schedule=linear", "name=lin"],
        "wandb": ["logger=wandb", "schedule=cosine", "name=cos"],
    }
    # callbacks=minimal: no end-of-training dashboard (its guidance sweep alone takes a minute).
    fast = [o for o in FAST if not o.startswith("logger=")] + ["callbacks=minimal"]
    procs = {
        kind: subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "train.py"), *SMALL_UNET, *fast, *extra,
             f"paths.output_root={out}", f"paths.cache_dir={out / 'cache'}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for kind, extra in jobs.items()
    }
    result = {}
    for kind, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        (result[kind],) = list((out / jobs[kind][-1].split("=")[1]).iterdir())
    # What the guidance-sweep callback writes (too slow to run here); the older table is ignored.
    media = result["csv"] / "media"
    (media / "guidance_sweep_table_step0000002.json").write_text(json.dumps({**SWEEP, "rows": [[9, 1, 1, 1]]}))
    (media / "guidance_sweep_table_step0000004.json").write_text(json.dumps(SWEEP))
    return result


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "report.html"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(runs["csv"].parents[1]),
         "--out", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == str(out.resolve())
    return out.read_text(encoding="utf-8")


def test_report_is_one_self_contained_file(report, runs):
    assert "http://" not in report and "https://" not in report
    assert "<script" not in report and "<link" not in report
    # loss curves + guidance curves + one final sample grid per run
    assert report.count(PNG) == 4
    assert all(f'src="{PNG}' in img for img in report.split("<img ")[1:])


def test_config_diff_shows_only_differing_keys(report, runs):
    diff = dict(config_diff(load_runs(discover_runs([runs["csv"], runs["wandb"]]))))
    assert diff["schedule._target_"] == ["diffusion_lab.schedules.linear_schedule",
                                         "diffusion_lab.schedules.cosine_schedule"]
    assert "data.name" not in diff and "trainer.max_steps" not in diff
    assert "schedule._target_" in report and "data.name" not in report
    assert "linear_schedule" in report and "cosine_schedule" in report
    assert "schedule=linear" in report and "schedule=cosine" in report  # Hydra overrides


def test_loss_history_from_csv_logger(runs):
    history = load_history(runs["csv"])
    with open(runs["csv"] / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key in ("train/loss", "val/loss"):
        expected = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        assert expected and history[key] == expected
    assert [s for s, _ in history["train/loss"]] == [0, 1, 2, 3]


def test_loss_history_from_wandb_offline_run(runs):
    run = runs["wandb"]
    assert not (run / "csv").exists()
    history = load_history(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [s for s, _ in history["train/loss"]] == [0, 1, 2, 3]
    assert len(history["val/loss"]) == 2
    assert history["train/loss"][-1][1] == pytest.approx(metrics["train/loss"], rel=1e-6)
    assert history["val/loss"][-1][1] == pytest.approx(metrics["val/loss"], rel=1e-6)
    # W&B's own reader (wandb-core) agrees record by record.
    (log,) = run.glob("wandb/offline-run-*/run-*.wandb")
    res = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                         check=False, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        pytest.skip(f"wandb leet inspect unavailable: {res.stderr[-300:]}")
    items = [json.loads(line)["history"]["item"] for line in res.stdout.splitlines()
             if '"type":"history"' in line]
    expected = [(i["trainer/global_step"], i["train/loss"]) for i in items if "train/loss" in i]
    assert history["train/loss"] == expected


def test_latest_guidance_sweep_is_used(runs):
    sweep = read_guidance_sweep(runs["csv"])
    assert sweep["step"] == 4 and sweep["w"] == [0.0, 1.0, 3.0]
    assert sweep["fid"] == [60.0, 40.0, 45.0] and sweep["accuracy"] == [0.2, 0.5, 0.8]
    assert sweep["num_samples"] == [20, 20, 20] and sweep["sampler"] == ["dpmpp_2m"] * 3
    assert read_guidance_sweep(runs["wandb"]) is None


def test_tensorboard_history_and_unreadable_wandb(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "tb"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"data": {"name": "digits"}}), run / ".hydra" / "config.yaml")
    writer = SummaryWriter(str(run / "tensorboard"))
    for step in range(3):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
    writer.close()
    bad = run / "wandb" / "offline-run-x" / "run-x.wandb"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a transaction log")
    notes: list[str] = []
    history = load_history(run, notes)
    assert history["train/loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert len(notes) == 1 and "could not read wandb log" in notes[0]
    html = write_report([run], tmp_path / "r.html").read_text()
    assert "could not read wandb log" in html and html.count(PNG) == 1  # the loss curves


def test_wandb_chunks_reassembles_records_across_blocks(tmp_path):
    """The LevelDB-style framing: FIRST/MIDDLE/LAST chunks, block trailers, checksums."""
    payloads = [b"a" * 100, bytes(range(256)) * 300, b"z" * 32000]
    data, block = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0)), 32768
    for payload in payloads:
        rest, first = payload, True
        while True:
            room = block - len(data) % block
            if room < 7:
                data += b"\0" * room
                continue
            chunk, rest = rest[:room - 7], rest[room - 7:]
            kind = (1 if not rest else 2) if first else (4 if not rest else 3)
            data += struct.pack("<IHB", zlib.crc32(chunk, zlib.crc32(bytes([kind]))), len(chunk), kind)
            data += chunk
            first = False
            if not rest:
                break
    path = tmp_path / "run-x.wandb"
    path.write_bytes(bytes(data))
    assert list(wandb_chunks(path)) == payloads


def test_discovery_and_errors(runs, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_runs import main

    both = sorted([runs["csv"].resolve(), runs["wandb"].resolve()])  # cos/..., lin/...
    assert discover_runs([runs["csv"].parents[1]]) == both
    assert discover_runs([runs["wandb"]]) == [runs["wandb"].resolve()]
    with pytest.raises(CompareError, match="no run directories"):
        discover_runs([tmp_path])

    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: no such file or directory: {tmp_path / 'missing'}"
    assert main([str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no run directories")
    assert not (tmp_path / "r.html").exists()
