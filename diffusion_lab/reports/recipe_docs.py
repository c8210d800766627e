"""docs/recipes/: the measured report of each recipe, copied from its newest run, never edited.

For each recipe preset (``conf/experiment/recipe_*.yaml``) the newest
``<outputs>/<name>/<run>/report.md`` that has its ``report.json`` is copied to
``docs/recipes/<name>.md`` with its PNGs under ``docs/recipes/<name>/`` (links rewritten), and
``docs/recipes/README.md`` lists every recipe: its report, or the command that generates it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

INDEX = "README.md"


def recipe_names(conf_dir: Path) -> list[str]:
    return sorted(p.stem for p in (conf_dir / "experiment").glob("recipe_*.yaml")
                  if p.stem != "recipe_base")


def newest_report(outputs: Path, name: str) -> Path | None:
    """The newest finished report of recipe ``name`` (run folders sort by their time stamp)."""
    done = sorted(p for p in (outputs / name).glob("*/report.md")
                  if (p.parent / "report.json").is_file())
    return done[-1] if done else None


def copy_report(report: Path, docs: Path, name: str) -> Path:
    """report.md -> docs/<name>.md, its images -> docs/<name>/ (links rewritten)."""
    info = json.loads((report.parent / "report.json").read_text())
    target = docs / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    text = report.read_text()
    for image in info.get("images", []):
        flat = image.replace("/", "__")
        shutil.copyfile(report.parent / image, target / flat)
        text = text.replace(f"]({image})", f"]({name}/{flat})")
    # the output folder is the machine's; the docs name the run it came from
    text = re.sub(r"- output folder: `[^`]*`", f"- generated from run `{report.parent.name}`", text)
    out = docs / f"{name}.md"
    out.write_text(text)
    return out


def write_docs(conf_dir: Path, outputs: Path, docs: Path) -> dict[str, Path | None]:
    """Copy every recipe's newest report; write the index. {name: docs page or None}."""
    docs.mkdir(parents=True, exist_ok=True)
    pages: dict[str, Path | None] = {}
    rows, seconds, machines = [], 0.0, set()
    for name in recipe_names(conf_dir):
        report = newest_report(outputs, name)
        pages[name] = copy_report(report, docs, name) if report else None
        if report:
            info = json.loads((report.parent / "report.json").read_text())
            seconds += info.get("seconds", 0.0)
            machines.add(info.get("machine", "?"))
        title = (report.read_text().splitlines()[0].lstrip("# ") if report else name)
        status = (f"[{title}]({name}.md)" if report
                  else f"{name}: not generated yet, run `python scripts/recipe.py experiment={name}`")
        rows.append(f"| `{name}` | {status} |")
    intro = ("Each page is the report its recipe wrote, copied by `python scripts/recipes_docs.py`; "
             "run a recipe with `python scripts/recipe.py experiment=<name>` (its report.md and "
             "PNGs land in its output folder).")
    found = sum(page is not None for page in pages.values())
    if found:  # recipes share trainings: each one is timed in the report that trained it
        intro += (f"\n\nThese {found} reports took {seconds / 60:.1f} min of wall time together "
                  f"(the sum of their own wall times, shared trainings counted once, in the "
                  f"report that trained them; machine: {'; '.join(sorted(machines))}).")
    index = ["# Recipes: the practitioner's experiments on 28x28 digits", "", intro, "",
             "| recipe | report |", "|---|---|", *rows, ""]
    (docs / INDEX).write_text("\n".join(index))
    return pages
