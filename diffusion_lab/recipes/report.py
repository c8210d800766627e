"""A recipe's report: markdown for people (``report.md``, PNGs beside it) and the same numbers
as JSON (``report.json``) for scripts and tests. Every figure in it is measured by the recipe
that writes it; the header states the command, the machine and the wall time."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from diffusion_lab.tasks.io import atomic_write_json
from diffusion_lab.utils.hardware import native_bf16


def machine() -> str:
    """'x86_64, 2 CPU threads, torch 2.x, native bf16' (the measuring machine, for every report;
    ``trainer.precision=auto`` trains in bf16 only where the CPU runs it natively)."""
    bf16 = "native bf16" if native_bf16(torch.device("cpu")) else "no native bf16 (fp32 training)"
    return (f"{platform.machine()} {platform.processor() or ''}".strip()
            + f", {torch.get_num_threads()} CPU threads, torch {torch.__version__}, {bf16}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class RecipeReport:
    """Collects sections, tables, images and numbers; :meth:`write` saves them atomically."""

    def __init__(self, name: str, title: str, out_dir: str | os.PathLike, command: str,
                 summary: str) -> None:
        self.name, self.title, self.out_dir = name, title, Path(out_dir)
        self.command, self.summary = command, summary
        self.start = time.perf_counter()
        self.body: list[str] = []
        self.numbers: dict = {}
        self.images: list[str] = []
        self.trainings: list[dict] = []

    def note_training(self, name: str, run_dir: str | os.PathLike, metrics: dict,
                      reused: bool) -> None:
        """A model the recipe used: its run folder and training time (recipes share trainings,
        so a reused model's training time is not in this report's wall time)."""
        self.trainings.append({"name": name, "run_dir": str(run_dir), "reused": reused,
                               "steps": metrics.get("global_step"),
                               "train_seconds": metrics.get("train_seconds")})

    def section(self, heading: str, text: str = "") -> None:
        self.body += [f"## {heading}", ""] + ([text, ""] if text else [])

    def text(self, text: str) -> None:
        self.body += [text, ""]

    def table(self, header: list[str], rows: list[list]) -> None:
        self.body += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.body += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
        self.body.append("")

    def image(self, path: str | os.PathLike, caption: str) -> None:
        rel = os.path.relpath(path, self.out_dir)
        self.images.append(rel)
        self.body += [f"![{caption}]({rel})", "", f"*{caption}*", ""]

    def images_side_by_side(self, items: list[tuple[str, str | os.PathLike]], caption: str) -> None:
        """One markdown table row of images, headed by their labels."""
        rels = [os.path.relpath(p, self.out_dir) for _, p in items]
        self.images += rels
        self.body += ["| " + " | ".join(label for label, _ in items) + " |",
                      "|" + "---|" * len(items),
                      "| " + " | ".join(f"![{label}]({r})" for (label, _), r in zip(items, rels)) + " |",
                      "", f"*{caption}*", ""]

    def number(self, key: str, value) -> None:
        self.numbers[key] = value

    def write(self) -> Path:
        seconds = time.perf_counter() - self.start
        head = [f"# {self.title}", "", self.summary, "",
                f"- command: `{self.command}`",
                f"- machine: {machine()}; wall time {seconds / 60:.1f} min",
                f"- output folder: `{self.out_dir}`"]
        for t in self.trainings:
            how = "reused, trained by an earlier recipe" if t["reused"] else "trained here"
            head.append(f"- model `{t['name']}`: {t['steps']} steps, {t['train_seconds']} s of "
                        f"training ({how}), `{t['run_dir']}`")
        head.append("")
        path = self.out_dir / "report.md"
        tmp = path.with_name("report.md.tmp")
        tmp.write_text("\n".join(head + self.body).rstrip() + "\n")
        os.replace(tmp, path)
        atomic_write_json({"recipe": self.name, "title": self.title, "command": self.command,
                           "machine": machine(), "seconds": round(seconds, 1),
                           "trainings": self.trainings, "numbers": self.numbers, "images": self.images},
                          self.out_dir / "report.json")
        return path
