"""Checkpoint-case tables scored at different seeds, merged and compared seed by seed."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_lab.bench.seed_merge import format_paired, merge_seeds, paired_differences

ROOT = Path(__file__).resolve().parents[1]


def row(library, method, fids, seeds, budget=10, **extra):
    return {"budget": budget, "library": library, "method": method, "config": "c", "steps": budget,
            "nfe": budget, "fid": statistics.fmean(fids), "accuracy": 0.9, "fids": fids,
            "accuracies": [0.9] * len(fids), "seeds": seeds, **extra}


def table(seeds, ours, theirs, ref, samples=1000, extra_rows=()):
    return {"budgets": [10], "score_samples": samples, "score_seeds": seeds, "seed": 0,
            "rows": [row("diffusion-lab", "dpmpp_2m", ours, seeds),
                     row("diffusers", "DPM-Solver++ 3M", theirs, seeds), *extra_rows],
            "references": [row("diffusion-lab", "dpmpp_2m", ref, seeds,
                               reference="default sampler")]}


def test_merge_joins_each_rows_seeds_and_recomputes_mean_and_spread():
    a = table([0, 1], [1.0, 1.4], [1.2, 1.3], [0.9, 1.1],
              extra_rows=[row("diffusers", "LMS", [2.0, 2.1], [0, 1])])
    b = table([2, 3, 4], [0.8, 0.9, 1.1], [0.7, 1.0, 1.2], [0.5, 0.6, 0.7])
    merged = merge_seeds([a, b])
    assert merged["score_seeds"] == [0, 1, 2, 3, 4]
    ours = next(r for r in merged["rows"] if r["library"] == "diffusion-lab")
    joined = [1.0, 1.4, 0.8, 0.9, 1.1]
    assert ours["fids"] == joined and ours["seeds"] == [0, 1, 2, 3, 4]
    assert ours["fid"] == pytest.approx(statistics.fmean(joined))
    assert ours["fid_std"] == pytest.approx(statistics.stdev(joined))
    assert [d["method"] for d in merged["dropped"]] == ["LMS"]  # scored at seeds 0 and 1 only
    assert merged["winners"][0]["diffusion-lab"]["fid"] == pytest.approx(1.04)
    assert merged["winners"][0]["diffusers"]["fid"] == pytest.approx(1.08)


def test_paired_differences_take_each_librarys_best_row_and_compare_seed_by_seed():
    a = table([0, 1], [1.0, 1.4], [1.2, 1.3], [0.9, 1.1])
    b = table([2, 3, 4], [0.8, 0.9, 1.1], [0.7, 1.0, 1.2], [0.5, 0.6, 0.7])
    (pair,) = paired_differences(merge_seeds([a, b]))
    # the reference row (the default sampler, mean 0.76) is ours best, not the searched row
    assert pair["diffusion-lab"]["reference"] == "default sampler"
    assert pair["differences"] == pytest.approx([0.9 - 1.2, 1.1 - 1.3, 0.5 - 0.7, 0.6 - 1.0,
                                                 0.7 - 1.2])
    assert pair["ours_lower"] == 5 and pair["seeds"] == [0, 1, 2, 3, 4]
    assert "5 of 5 seeds" in format_paired([pair])
    worse = table([0, 1], [1.0, 1.4], [0.1, 1.3], [0.9, 1.1])
    (pair,) = paired_differences(worse)
    assert pair["ours_lower"] == 1  # seed 0: 0.9 against 0.1


@pytest.mark.parametrize("second, message", [
    (table([1, 2], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]), "more than one table"),
    (table([2, 3], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], samples=500), "different sample counts"),
])
def test_merge_refuses_tables_that_cannot_be_joined(second, message):
    first = table([0, 1], [1.0, 1.4], [1.2, 1.3], [0.9, 1.1])
    with pytest.raises(ValueError, match=message):
        merge_seeds([first, second])


def test_the_merge_flag_writes_the_joined_table_and_refuses_a_partial_one(tmp_path):
    a, b, partial = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "p.json"
    a.write_text(json.dumps(table([0, 1], [1.0, 1.4], [1.2, 1.3], [0.9, 1.1])))
    b.write_text(json.dumps(table([2], [0.8], [0.7], [0.5])))
    partial.write_text(json.dumps({**table([3], [0.8], [0.7], [0.5]), "partial": True}))
    out = tmp_path / "merged.json"
    script = [sys.executable, str(ROOT / "scripts" / "sampler_report.py"), "--merge"]
    proc = subprocess.run([*script, str(a), str(b), "--json", str(out)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 seeds" in proc.stdout
    merged = json.loads(out.read_text())
    assert merged["score_seeds"] == [0, 1, 2] and merged["merged_from"] == [str(a), str(b)]
    assert merged["paired"][0]["ours_lower"] == 3
    proc = subprocess.run([*script, str(a), str(partial)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2 and "a partial table" in proc.stderr
