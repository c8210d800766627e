"""scripts/compare_runs.py: one self-contained HTML report over real runs of scripts/train.py.

The runs are trained by scripts/train.py itself (so ``.hydra/`` is Hydra's own), at the same
time: 4 steps each, linear schedule + CSV logger, cosine schedule + W&B (offline), and the
TensorBoard and no-logger variants; a fifth run is refused at validation (Hydra has already
made its folder). The report reads only each run's own records, whatever its logger.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
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
from diffusion_lab.reports.run_records import has_records, load_history, read_guidance_sweep

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_train import FAST, SMALL_UNET

PNG = "data:image/png;base64,"
SWEEP = {"columns": ["w", "fid", "accuracy", "num_samples", "sampler", "nfe"],  # GuidanceSweep's
         "rows": [[3.0, 45.0, 0.8, 20, "dpmpp_2m", 3], [0.0, 60.0, 0.2, 20, "dpmpp_2m", 3],
                  [1.0, 40.0, 0.5, 20, "dpmpp_2m", 3]]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """{"csv": run_dir, "wandb": ..., "tensorboard": ..., "none": ..., "refused": ...} under
    one output root."""
    out = tmp_path_factory.mktemp("outputs")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    jobs = {
        "csv": ["logger=csv", "schedule=linear", "name=lin"],
        "wandb": ["logger=wandb", "schedule=cosine", "name=cos"],
        "tensorboard": ["logger=tensorboard", "schedule=linear", "name=tb"],
        "none": ["logger=none", "schedule=linear", "name=nolog"],
        "refused": ["sampler.steps=0", "name=typo"],
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
        assert proc.returncode == (2 if kind == "refused" else 0), err[-3000:]
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
    # loss curves + guidance curves + one final sample grid per trained run
    assert report.count(PNG) == 2 + 4
    assert all(f'src="{PNG}' in img for img in report.split("<img ")[1:])


def test_config_diff_shows_only_differing_keys(report, runs):
    diff = dict(config_diff(load_runs(discover_runs([runs["csv"], runs["wandb"]]))))
    assert diff["schedule._target_"] == ["diffusion_lab.schedules.linear_schedule",
                                         "diffusion_lab.schedules.cosine_schedule"]
    assert "data.name" not in diff and "trainer.max_steps" not in diff
    assert "schedule._target_" in report and "data.name" not in report
    assert "linear_schedule" in report and "cosine_schedule" in report
    assert "schedule=linear" in report and "schedule=cosine" in report  # Hydra overrides


def test_loss_history_matches_the_csv_loggers_own_file(runs):
    history = load_history(runs["csv"])
    with open(runs["csv"] / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key in ("train/loss", "val/loss"):
        expected = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        assert expected and history[key] == expected
    assert [s for s, _ in history["train/loss"]] == [0, 1, 2, 3]


def test_loss_history_matches_the_tensorboard_event_files(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = {p.parent for p in runs["tensorboard"].glob("tensorboard/**/events.out.tfevents.*")}
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
    acc.Reload()
    history = load_history(runs["tensorboard"])
    for key in ("train/loss", "val/loss"):
        expected = [(e.step, e.value) for e in acc.Scalars(key)]
        assert expected and [s for s, _ in history[key]] == [s for s, _ in expected]
        assert [v for _, v in history[key]] == pytest.approx([v for _, v in expected], rel=1e-6)


@pytest.mark.parametrize("kind", ["csv", "wandb", "tensorboard", "none"])
def test_every_run_is_read_from_its_own_records_whatever_its_logger(runs, kind):
    run = runs[kind]
    history = load_history(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [s for s, _ in history["train/loss"]] == [0, 1, 2, 3]
    assert len(history["val/loss"]) == 2
    assert history["train/loss"][-1][1] == pytest.approx(metrics["train/loss"], rel=1e-6)
    assert history["val/loss"][-1][1] == pytest.approx(metrics["val/loss"], rel=1e-6)
    assert not any(run.glob("wandb")) or kind == "wandb"


def test_runs_that_never_trained_are_not_runs(runs, report, tmp_path):
    refused = runs["refused"]
    assert (refused / ".hydra" / "config.yaml").is_file() and not has_records(refused)
    assert all(has_records(runs[k]) for k in ("csv", "wandb", "tensorboard", "none"))
    assert "diffusion-lab: 4 runs compared" in report
    assert "1 folder(s) left out: runs that never trained" in report and str(refused) in report
    # a folder holding only refused runs: one readable line, exit 2, no report
    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_runs import main

    assert main([str(refused.parent), "--out", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


def test_a_damaged_record_line_is_a_note(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "media").mkdir()
    OmegaConf.save(OmegaConf.create({"data": {"name": "digits"}}), run / ".hydra" / "config.yaml")
    lines = [json.dumps({"step": s, "train/loss": 1.0 / (s + 1)}) for s in range(3)]
    (run / "media" / "scalars.jsonl").write_text("\n".join(lines) + '\n{"step": 3, "train/lo')
    notes: list[str] = []
    history = load_history(run, notes)
    assert history["train/loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert notes == ["1 unreadable line(s) in media/scalars.jsonl skipped"]
    html = write_report([run], tmp_path / "r.html").read_text()
    assert "unreadable line" in html and html.count(PNG) == 1  # the loss curves


def test_latest_guidance_sweep_is_used(runs):
    sweep = read_guidance_sweep(runs["csv"])
    assert sweep["step"] == 4 and sweep["w"] == [0.0, 1.0, 3.0]
    assert sweep["fid"] == [60.0, 40.0, 45.0] and sweep["accuracy"] == [0.2, 0.5, 0.8]
    assert sweep["num_samples"] == [20, 20, 20] and sweep["sampler"] == ["dpmpp_2m"] * 3
    assert read_guidance_sweep(runs["wandb"]) is None


def test_discovery_and_errors(runs, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_runs import main

    every = sorted(r.resolve() for r in runs.values())  # cos/..., lin/..., nolog/..., tb/..., typo/...
    assert discover_runs([runs["csv"].parents[1]]) == every
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


def test_sweep_summary_marks_jobs_that_never_trained(tmp_path):
    from diffusion_lab.reports.multirun_summary import summarize_training_sweep

    for job, overrides in (("0", ["lr=1e-3"]), ("1", ["lr=oops"]), ("2", ["lr=1e-2"])):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(overrides), tmp_path / job / ".hydra" / "overrides.yaml")
    (tmp_path / "0" / "metrics.json").write_text(json.dumps({"global_step": 4, "train/loss": 0.5}))
    (tmp_path / "2" / "media").mkdir()  # trained, then killed before writing metrics.json
    (tmp_path / "2" / "media" / "scalars.jsonl").write_text('{"step": 0, "train/loss": 1.0}\n')
    rows = summarize_training_sweep(tmp_path)["rows"]
    assert rows[0] == ["0", "lr=1e-3", 4, 0.5]
    assert rows[1][1] == "lr=oops (never trained: refused at validation or stopped before step 0)"
    assert rows[2][1] == "lr=1e-2 (no metrics.json: failed or still running)"
