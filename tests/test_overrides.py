"""The command-line override check: what Hydra's composition refuses is refused in one line,
exit 2, before torch loads; every value of a -m sweep is checked; what composes passes."""

import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_lab.tasks.overrides import override_error, refuse_unless_composable

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [
    [],
    ["schedule=cosine", "sampler=ddim", "guidance.scale=3"],                  # the README's first line
    ["-m", "schedule=linear,cosine", "sampler=ddim,dpmpp"],                   # its sweep
    ["-m", "schedule=linear,cosine", "sampler=ddim,dpmpp", "hydra/launcher=slurm"],
    ["experiment=mnist5k", "hydra.run.dir=/tmp/x", "+extra_key=1", "~callbacks.xt_strip"],
    ["--multirun", "schedule=glob(*)", "trainer.max_steps=range(1,4)"],
    ["-m", "module.lr=interval(0.0001,0.01)"],                                 # a sweeper plugin's
    ["--cfg", "job", "schedule=foo"],                                          # flags: Hydra's to judge
], ids=lambda a: " ".join(a) or "defaults")
def test_what_composes_passes(args):
    assert override_error("train", args) is None


@pytest.mark.parametrize(("config", "args", "message"), [
    ("train", ["schedule=foo"],
     "In 'train': Could not find 'schedule/foo'; options: cosine, linear, linear_flow, sigmoid"),
    ("train", ["trainer.max_stepz=3"],
     ("Could not override 'trainer.max_stepz'. To append to your config use +trainer.max_stepz=3 "
     "(Key 'max_stepz' is not in struct)")),
    ("train", ["~callbacks.nope"], "Could not delete from config. 'callbacks.nope' does not exist."),
    ("train", ["hydra/launcher=nope"], "Could not find 'hydra/launcher/nope'; options: basic,"),
    # every sweep value is composed once: the bad one is named, wherever it sits
    ("train", ["-m", "schedule=linear,cosine", "sampler=ddim,dpmpp,nope"],
     "sampler=nope: In 'train': Could not find 'sampler/nope'"),
    ("train", ["-m", "schedule=foo,cosine", "sampler=ddim,dpmpp"],
     "schedule=foo sampler=ddim: In 'train': Could not find 'schedule/foo'"),
    ("train", ["-m", "schedule=glob(*)", "trainer.max_stepz=1,2"],
     "schedule=cosine trainer.max_stepz=1: Could not override 'trainer.max_stepz'"),
    ("train", ["schedule=linear,cosine"],
     "schedule=linear,cosine: several values sweep only with -m (--multirun)"),
    ("train", ["trainer.max_steps=[1"], "no viable alternative at input '[1'"),
    ("sample", ["sampler=nope"], "Could not find 'sampler/nope'"),
    ("evaluate", ["guidance.scalez=2"], "Could not override 'guidance.scalez'"),
    ("interpolate", ["sampler=nope"], "Could not find 'sampler/nope'"),
    ("inpaint", ["mask.nope=1"], "Could not override 'mask.nope'"),
    ("img2img", ["-m", "strength=0.3,0.5", "sampler=ddim,nope"], "sampler=nope: In 'img2img'"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_what_does_not_compose_is_named_in_one_line(config, args, message):
    error = override_error(config, args)
    assert error is not None and message in error, error
    assert "\n" not in error


def test_refusal_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        refuse_unless_composable("train", ["-m", "schedule=linear,cosinee"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: schedule=cosinee: ") and err.count("\n") == 1
    refuse_unless_composable("train", ["schedule=cosine"])  # composes: returns


def test_the_check_loads_neither_torch_nor_lightning():
    """The scripts call it before their heavy imports: a refusal costs ~0.3 s, not ~8."""
    code = ("import sys; from diffusion_lab.tasks.overrides import override_error; "
            "assert override_error('train', ['-m', 'schedule=glob(*)', 'sampler=x']); "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
