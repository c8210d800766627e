"""Every command the README shows runs as written, at a tiny size.

The README's ``bash`` blocks (and ``$ `` lines of its other blocks) are read in order and each
command is run in a scratch folder, with overrides appended that shrink the work (a few steps,
few samples, CSV logging, no classifier scoring of single sampling runs: ``metrics=false``,
since the judge of each dataset is trained on first use, minutes for 28x28 images; the sweeps
keep it, summarize_sweep.py reads it, and tests/test_train.py and test_super_resolution.py
cover the scoring) but change nothing else: the command's own arguments, presets and sweeps stay
as the README prints them. Placeholders (``ckpt=...``, ``<run>``,
``<date>_<time>``) are filled with what the earlier commands produced. A command the test cannot
run here is listed in ``NOT_RUN`` with the reason and the test that covers it instead; a new
README command that is neither run nor listed fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# command prefix -> why it is not run here (and what covers it)
NOT_RUN = {
    "make test": "the test suite itself",
    "make test-fast": "the test suite itself",
    "make recipes": "about an hour, and it rewrites docs/recipes/; each recipe runs at tiny "
                    "size through the README's scripts/recipe.py line and tests/test_recipes.py",
    "make bench": "minutes of timing; its code runs at tiny size in tests/test_bench*.py",
    "python scripts/benchmark.py --readme": "rewrites README.md; tests/test_bench.py covers it",
    "python scripts/benchmark.py --models --diffusers --samplers": "tens of minutes of search; "
    "tests/test_bench_diffusers.py runs it at a small size",
    ".venv/bin/pip install": "installation; `make test` performs it before this test runs",
    "python scripts/human_eval.py tally": "needs a person's votes.json; tests/test_human_eval.py "
                                          "tallies a simulated rater's",
    "python scripts/train.py -m hydra/launcher=slurm": "needs a SLURM cluster; "
                                                       "tests/test_launchers.py composes it",
}

# Work shrinkers appended to every command of a script (a key the command sweeps is left alone).
TINY = {
    "train.py": [
        "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false", "callbacks=minimal",
        "callbacks.checkpoint.every_n_train_steps=2", "callbacks.sample_grid.every_n_steps=2",
        "callbacks.sample_grid.samples_per_class=1", "callbacks.sample_grid.num_samples=8",
        "logger=csv", "sampler.steps=2", "eval.samples_per_class=2", "data.module.batch_size=8",
        "module.warmup_steps=0", "hydra.sweeper.n_trials=2", "eval.enabled=false",
        "autoencoder.max_steps=2",
    ],
    "sample.py": ["samples_per_class=2", "num_samples=8", "sampler.steps=2", "metrics=false"],
    "train_autoencoder.py": ["trainer.max_steps=2", "trainer.val_check_interval=2",
                             "trainer.enable_progress_bar=false", "logger=csv",
                             "callbacks.reconstructions.every_n_steps=2"],
    "train_noisy_classifier.py": ["trainer.max_steps=2", "trainer.val_check_interval=2",
                                  "trainer.enable_progress_bar=false", "logger=csv",
                                  "callbacks.checkpoint.every_n_train_steps=2"],
    "evaluate.py": ["samples_per_class=2", "sampler.steps=2", "inspect.num_samples=8",
                    "inspect.clusters=3"],
    "optimize_grid.py": ["--steps", "2", "--samples", "2", "--fine", "20", "--sweeps", "1"],
    "recipe.py": ["trainer.max_steps=2", "trainer.val_check_interval=2", "logger=csv",
                  "trainer.enable_progress_bar=false", "callbacks=minimal",
                  "callbacks.checkpoint.every_n_train_steps=2", "callbacks.sample_grid=null",
                  "eval.enabled=false", "schedule.num_steps=20", "sampler.steps=2",
                  "data.module.batch_size=8", "module.warmup_steps=0", "backbone.base_channels=8",
                  "backbone.groups=4", "recipe.run.strip_samples=2", "recipe.run.strip_columns=3"],
    "few_step_report.py": ["--samples-per-class", "2"],
    "interpolate.py": ["pairs=2", "frames=3", "sampler.steps=3"],
    "inpaint.py": ["images=2", "samples_per_image=1", "sampler.steps=3", "resample=2"],
    "img2img.py": ["images=2", "samples_per_image=1", "sampler.steps=3"],
    "super_resolve.py": ["eval_images=4", "samples_per_image=2", "sampler.steps=2",
                         "metrics=false"],
    "text_to_image.py": ["samples_per_prompt=2", "sampler.steps=2", "metrics=false"],
    "visualize.py": ["num_points=40", "num_samples=4", "sampler.steps=2",
                     "animation.field_grid=3"],
}
# key -> (only with / not with) an argument starting so: Hydra refuses unknown keys, and a
# hyper-parameter search needs the end-of-run metric it minimises.
# the README's examples of refused values -> what the one-line error says
REFUSED = {"sampler.steps=2000": "exceeds the 1000 training timesteps",
           "backbone.groups=5": "groups=5 must divide every width",
           "schedule=linear,cosinee": "error: schedule=cosinee: In 'train': Could not find"}
ONLY_IF_PRESENT = {"hydra.sweeper.n_trials": "hparams_search=",
                   "autoencoder.max_steps": "experiment=mnist5k_latent"}
NOT_IF_PRESENT = {"eval.enabled": ("hparams_search=",),
                  "metrics": ("-m",),  # a sampling sweep is scored: summarize_sweep.py reads it
                  # the super-resolution and text-to-image stages have no unconditional sample
                  # grid (their own grids instead)
                  **{f"callbacks.sample_grid.{k}": ("stage=super_resolution",
                                                    "stage=text_to_image")
                     for k in ("every_n_steps", "samples_per_class", "num_samples")}}


def readme_commands(text: str) -> list[str]:
    """Shell commands of the README: every line of a ``bash`` block (comments stripped,
    backslash continuations joined) and ``$ ``-prefixed lines of other fenced blocks."""
    commands, block, lang = [], None, ""
    pending = ""
    for line in text.splitlines():
        if line.startswith("```"):
            if block is None:
                block, lang = [], line[3:].strip()
            else:
                block = None
            continue
        if block is None:
            continue
        if lang == "bash":
            code = pending + re.sub(r"\s+#.*$", "", line).strip()
            if code.endswith("\\"):
                pending = code[:-1].strip() + " "
                continue
            pending = ""
            if code:
                commands.append(code)
        elif line.startswith("$ "):
            commands.append(line[2:].strip())
    return commands


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def shrink(script: str, args: list[str]) -> list[str]:
    """``args`` plus the script's TINY overrides whose key the command does not sweep."""
    swept = {_key(a) for a in args if "=" in a and "," in a.split("=", 1)[1]}
    present = {_key(a) for a in args if "=" in a}
    extra = []
    for override in TINY.get(script, []):
        key = _key(override)
        if key in swept:
            continue
        if key in ONLY_IF_PRESENT and not any(a.startswith(ONLY_IF_PRESENT[key]) for a in args):
            continue
        if key in NOT_IF_PRESENT and any(a.startswith(NOT_IF_PRESENT[key]) for a in args):
            continue
        if key == "callbacks" and any(k == "callbacks" or k.startswith("callbacks.")
                                      for k in present):
            continue  # the command sets callbacks (or keys that `minimal` would null)
        extra.append(override)
    return args + extra


class Runner:
    """Runs README commands in ``cwd`` and fills placeholders from what earlier ones wrote."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT),
                    "DIFFUSION_LAB_CACHE": str(cwd / "cache"), "HYDRA_FULL_ERROR": "0"}

    def newest(self, pattern: str) -> Path:
        found = sorted(self.cwd.glob(pattern), key=lambda p: p.stat().st_mtime)
        assert found, f"nothing matches {pattern} under {self.cwd}: an earlier command failed?"
        return found[-1]

    def fill(self, arg: str) -> str:
        if arg in ("ckpt=...", "guidance.guide_ckpt=..."):
            key = arg.split("=", 1)[0]
            return f"{key}=" + str(self.newest("outputs/default/*/checkpoints/last.ckpt"))
        # ckpt=, distill.teacher_ckpt=, ... (not make's ARGS="...": its words are filled one by one)
        if "<run>" in arg and re.match(r"[\w.]+=", arg) and " " not in arg:
            key, value = arg.split("=", 1)  # that experiment's newest run
            return f"{key}=" + str(self.newest(value.replace("<run>", "*")))
        if "<run>" in arg and arg.endswith((".ckpt", ".npz")):  # a positional run file
            return str(self.newest(arg.replace("<run>", "*")))
        if "<date>_<time>" in arg:
            prefix = arg.split("<date>_<time>")[0]
            return str(self.newest(prefix + "*"))
        return arg

    def argv(self, command: str, tiny: bool = True) -> tuple[list[str], Path]:
        words = [self.fill(w) for w in shlex.split(command)]
        shrink_ = shrink if tiny else (lambda script, args: args)
        if words[:2] == ["make", "train"] or words[:2] == ["make", "sample"]:
            script = {"train": "train.py", "sample": "sample.py"}[words[1]]
            args = next((w.split("=", 1)[1] for w in words[2:] if w.startswith("ARGS=")), "")
            args = [self.fill(a) for a in shlex.split(args)]
            args = shrink_(script, args) + [f"paths.output_root={self.cwd / 'outputs'}"]
            return ["make", "-s", "-C", str(ROOT), words[1], f"PY={sys.executable}",
                    "ARGS=" + shlex.join(args)], ROOT
        assert words[0] == "python" and words[1].startswith("scripts/"), command
        script = Path(words[1]).name
        return [sys.executable, str(ROOT / words[1]), *shrink_(script, words[2:])], self.cwd

    def run(self, command: str, tiny: bool = True, timeout: float = 600):
        argv, cwd = self.argv(command, tiny)
        return subprocess.run(argv, check=False, cwd=cwd, env=self.env, capture_output=True,
                              text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


def test_readme_is_parsed_into_commands():
    commands = readme_commands(README.read_text())
    assert "python scripts/train.py schedule=linear sampler=ddim guidance.scale=3" in commands
    joined = [c for c in commands if c.startswith("python scripts/sample.py -m")]
    assert joined and "guidance.scale=1,3,5" in joined[0]  # continuation line joined
    assert shrink("train.py", ["-m", "sampler.steps=10,20"]).count("sampler.steps=2") == 0
    assert "trainer.max_steps=2" in shrink("train.py", ["trainer.max_steps=500"])
    assert "metrics=false" in shrink("sample.py", ["ckpt=a.ckpt"])
    assert "metrics=false" not in shrink("sample.py", ["-m", "ckpt=a.ckpt", "sampler=ddim,dpmpp"])


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    runner = Runner(tmp_path)
    ran, failures = [], []
    for command in readme_commands(README.read_text()):
        if any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        # the README's examples of refused values
        expected_error = next((message for value, message in REFUSED.items() if value in command), None)
        proc = runner.run(command, tiny=expected_error is None)
        ran.append(command)
        if expected_error:
            ok = proc.returncode == 2 and expected_error in proc.stderr
        else:
            ok = proc.returncode == 0
        if not ok:
            failures.append(f"{command}\n  exit {proc.returncode}\n{proc.stderr[-2000:]}")
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= 15, ran
    assert (tmp_path / "report.html").is_file()
