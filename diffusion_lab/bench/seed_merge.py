"""Tables of the checkpoint case scored at different seeds, merged into one, and paired per seed.

A table of ``scripts/sampler_report.py --ckpt`` scores every row at its ``score_seeds`` (the
same seeds, hence the same initial noise x_T, for every row). Scoring the same rows later at
further seeds (``--rescore ... --score-seeds 2 3 4``) gives a second table; :func:`merge_seeds`
joins them into one over the union of the seeds, recomputing each row's mean and spread:

    fid = mean_s FID_s,   fid_std = sqrt(sum_s (FID_s - fid)^2 / (n - 1)),   accuracy = mean_s acc_s

Because every row shares each seed's x_T, two rows are compared best per seed
(:func:`paired_differences`): d_s = FID_s(ours) - FID_s(theirs). The spread of d_s over seeds is
much smaller than either row's own spread over seeds (the seed moves both rows together), so
"lower at every seed" is the statement the seeds support, not the difference of two means.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from diffusion_lab.bench.checkpoint_case import winners_of

__all__ = ["format_paired", "merge_seeds", "paired_differences"]

#: what identifies a row across tables
ROW_KEY = ("budget", "library", "reference", "method", "config", "steps")


def _key(row: dict) -> tuple:
    return tuple(row.get(k) for k in ROW_KEY)


def _merged_row(parts: list[dict]) -> dict:
    fids = [f for p in parts for f in p["fids"]]
    accuracies = [a for p in parts for a in p["accuracies"]]
    seeds = [s for p in parts for s in p["seeds"]]
    return {**parts[0], "fid": statistics.fmean(fids), "accuracy": statistics.fmean(accuracies),
            "fid_std": statistics.stdev(fids) if len(fids) > 1 else 0.0, "fids": fids,
            "accuracies": accuracies, "seeds": seeds}


def merge_seeds(tables: Sequence[dict]) -> dict:
    """One table over the union of ``tables``' seeds: the rows (and reference rows) every table
    scored, each with its per-seed scores joined; rows some table lacks are listed under
    ``dropped``. Raises ``ValueError`` when the tables scored different sample counts, share a
    seed, or a row's scores do not name their seeds."""
    if len(tables) < 2:
        raise ValueError("merging needs at least two tables")
    counts = {t["score_samples"] for t in tables}
    if len(counts) > 1:
        raise ValueError(f"the tables scored different sample counts: {sorted(counts)}")
    seen: set[int] = set()
    for t in tables:
        seeds = set(t.get("score_seeds", [t.get("seed")]))
        if seen & seeds:
            raise ValueError(f"seed(s) {sorted(seen & seeds)} scored in more than one table")
        seen |= seeds
    merged, dropped = {}, []
    for part in ("rows", "references"):
        by_table = [{_key(r): r for r in t.get(part, [])} for t in tables]
        keys = list(dict.fromkeys(k for rows in by_table for k in rows))
        out = []
        for key in keys:
            parts = [rows[key] for rows in by_table if key in rows]
            if len(parts) < len(tables):
                dropped.append({k: parts[0].get(k) for k in ROW_KEY if k in parts[0]})
                continue
            if any("seeds" not in p or len(p["seeds"]) != len(p["fids"]) for p in parts):
                raise ValueError(f"row {key}: its scores do not name their seeds")
            out.append(_merged_row(parts))
        merged[part] = out
    budgets = sorted({b for t in tables for b in t["budgets"]})
    seeds = [s for t in tables for s in t.get("score_seeds", [t.get("seed")])]
    return {"budgets": budgets, "score_samples": counts.pop(), "score_seeds": seeds,
            "seed": tables[0].get("seed"), "checkpoints": [t.get("checkpoint") for t in tables], **merged, "dropped": dropped,
            "winners": winners_of(merged["rows"], budgets)}


def paired_differences(table: dict) -> list[dict]:
    """Per budget: diffusion-lab's row of lowest mean FID (searched rows and reference rows, e.g.
    the default sampler, alike) against diffusers' row of lowest mean FID, with the per-seed
    differences d_s = FID_s(ours) - FID_s(theirs), their mean and the number of seeds at which
    ours is lower. A budget where a library has no row is left out."""
    out = []
    for budget in table["budgets"]:
        rows = [r for r in table["rows"] + table.get("references", []) if r["budget"] == budget]
        ours = [r for r in rows if r["library"] == "diffusion-lab"]
        theirs = [r for r in rows if r["library"] == "diffusers"]
        if not ours or not theirs:
            continue
        a = min(ours, key=lambda r: r["fid"])
        b = min(theirs, key=lambda r: r["fid"])
        by_seed = dict(zip(b["seeds"], b["fids"], strict=True))
        common = [s for s in a["seeds"] if s in by_seed]
        diffs = [fa - by_seed[s] for s, fa in zip(a["seeds"], a["fids"], strict=True)
                 if s in by_seed]
        out.append({"budget": budget, "diffusion-lab": a, "diffusers": b, "seeds": common,
                    "differences": diffs, "mean_difference": statistics.fmean(diffs),
                    "ours_lower": sum(d < 0 for d in diffs)})
    return out


def _name(row: dict) -> str:
    label = row.get("reference") or row["method"]
    return f"{label} [{row['config']}; {row['steps']} steps]"


def format_paired(pairs: list[dict]) -> str:
    """The per-seed comparison as text, one line per budget."""
    lines = ["NFE  ours - theirs per seed (FID)  | lower at  | ours  vs  theirs"]
    for p in pairs:
        diffs = " ".join(f"{d:+.3f}" for d in p["differences"])
        lines.append(f"{p['budget']:3d}  {diffs}  (mean {p['mean_difference']:+.3f})  | "
                     f"{p['ours_lower']} of {len(p['seeds'])} seeds  | "
                     f"{_name(p['diffusion-lab'])} {p['diffusion-lab']['fid']:.4g}  vs  "
                     f"{_name(p['diffusers'])} {p['diffusers']['fid']:.4g}")
    return "\n".join(lines)
