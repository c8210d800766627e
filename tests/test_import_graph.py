"""The layering of the outer packages, read from the source: callbacks and tasks build on the
one sample-evaluation package and never on each other's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import diffusion_lab

PACKAGE = Path(diffusion_lab.__file__).parent
#: shared pieces, not callbacks of their own: the periodic metrics' schedule
CALLBACK_BASES = {"diffusion_lab.callbacks.periodic", "diffusion_lab.callbacks.unconditional_samples"}


def imported_modules(path: Path) -> set[str]:
    """Every ``diffusion_lab`` module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("diffusion_lab.")}


def modules_of(package: str) -> dict[str, set[str]]:
    folder = PACKAGE / package
    return {f"diffusion_lab.{package}.{p.stem}": imported_modules(p)
            for p in sorted(folder.glob("*.py")) if p.stem != "__init__"}


def callback_modules() -> set[str]:
    return set(modules_of("callbacks")) - CALLBACK_BASES


def test_the_scan_sees_the_imports_it_checks():
    # the scan itself: a callback that uses the evaluation package is seen doing so
    assert "diffusion_lab.evaluation" in modules_of("callbacks")["diffusion_lab.callbacks.guidance_sweep"]
    assert "diffusion_lab.callbacks.sample_grid" in callback_modules()


def test_no_callback_imports_another_callback():
    callbacks = callback_modules()
    for name, imports in modules_of("callbacks").items():
        others = {m for m in imports if any(m == c or m.startswith(c + ".") for c in callbacks)}
        assert not others - {name}, f"{name} imports the callback module(s) {sorted(others)}"


def test_tasks_evaluation_and_visualization_import_no_callback_module():
    for package in ("tasks", "evaluation", "visualization"):
        for name, imports in modules_of(package).items():
            bad = sorted(m for m in imports if m.startswith("diffusion_lab.callbacks"))
            assert not bad, f"{name} imports {bad}"


def test_sample_evaluation_has_one_home():
    """The pieces of sample-based evaluation are defined once, in diffusion_lab.evaluation."""
    pieces = {"grid_labels", "describe_sampler", "sampler_name", "SampleJudge",
              "why_not_judgeable", "generate_samples"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "evaluation":
            continue
        defined = {n.name for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not defined & pieces, f"{path} redefines {sorted(defined & pieces)}"
