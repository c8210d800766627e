"""Opening a checkpoint never runs code from it.

Two ways a checkpoint from someone else could run code, and the refusal of each: a pickled
object whose unpickling calls a function (``__reduce__``), and a stored config whose
``_target_`` names a function that Hydra would call. Each test plants a payload that creates a
marker file and checks the file never appears.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_validation import write_checkpoint

from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file
from diffusion_lab.tasks.resume import resolve_ckpt_path
from diffusion_lab.tasks.trusted_targets import TRUSTED_NAMES, is_trusted_target

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def genuine(make_cfg, path: Path, edit=None) -> Path:
    return write_checkpoint(make_cfg, path, edit=edit)


def pickle_payload(make_cfg, path: Path, marker: Path) -> Path:
    return genuine(make_cfg, path, edit=lambda c: c.update(extra=Payload(marker)))


def target_payload(make_cfg, path: Path, marker: Path, target="os.system") -> Path:
    def edit(ckpt):
        ckpt["diffusion_lab_config"]["backbone"] = {"_target_": target, "_args_": [f"touch {marker}"]}
    return genuine(make_cfg, path, edit=edit)


def test_the_payload_is_real(tmp_path):
    """The pickle payload does run when a checkpoint is loaded the unsafe way."""
    marker = tmp_path / "ran"
    torch.save({"x": Payload(marker)}, tmp_path / "evil.ckpt")
    torch.load(tmp_path / "evil.ckpt", weights_only=False)
    assert marker.exists()


def test_pickled_payload_is_refused_unrun(make_cfg, tmp_path):
    marker = tmp_path / "ran"
    path = pickle_payload(make_cfg, tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {path} holds a pickled ")) as info:
        load_checkpoint_file(path)
    assert "system" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.call",
                                    "diffusion_lab.backbones.unet.torch.load",
                                    "diffusion_lab.tasks.io.atomic_write_json",
                                    "diffusion_lab.data.download.download_url",
                                    "diffusion_lab.data.cifar.download_url",
                                    "diffusion_lab.optimized_grid.save_grids"])
def test_config_target_outside_the_allow_list_is_refused_unrun(make_cfg, tmp_path, target):
    marker = tmp_path / "ran"
    path = target_payload(make_cfg, tmp_path / "evil.ckpt", marker, target)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: the config stored in it names backbone._target_='{target}', which is not")):
        module_from_checkpoint(load_checkpoint_file(path), path=path)
    assert not marker.exists()


def test_nested_targets_are_checked(make_cfg, tmp_path):
    marker = tmp_path / "ran"

    def edit(ckpt):
        ckpt["diffusion_lab_config"]["sampler"]["spacing"] = {
            "_target_": "os.system", "_args_": [f"touch {marker}"]}
    path = genuine(make_cfg, tmp_path / "evil.ckpt", edit=edit)
    with pytest.raises(CheckpointError, match="names sampler.spacing._target_='os.system'"):
        module_from_checkpoint(load_checkpoint_file(path), path=path)
    assert not marker.exists()


def test_every_target_the_project_configures_is_trusted():
    """Checkpoints written by the project itself open: every _target_ under the stored groups."""
    groups = ["backbone", "schedule", "objective", "sampler", "data", "module"]
    targets = {m.group(1) for g in groups for f in (ROOT / "conf" / g).rglob("*.yaml")
               for m in re.finditer(r"_target_:\s*(\S+)", f.read_text())}
    assert len(targets) > 20
    assert [t for t in sorted(targets | TRUSTED_NAMES) if not is_trusted_target(t)] == []


def test_genuine_checkpoint_still_opens(make_cfg, tmp_path):
    path = genuine(make_cfg, tmp_path / "model.ckpt")
    module = module_from_checkpoint(load_checkpoint_file(path), path=path)
    assert module.num_classes == 10


def test_resume_auto_skips_a_malicious_checkpoint_unrun(make_cfg, tmp_path):
    marker = tmp_path / "ran"
    experiment = tmp_path / "runs" / "digits"
    pickle_payload(make_cfg, experiment / "2020-01-01_00-00-00" / "checkpoints" / "last.ckpt", marker)
    assert resolve_ckpt_path(None, experiment, auto=True) is None
    assert not marker.exists()


def test_sampling_cli_refuses_a_malicious_checkpoint(make_cfg, tmp_path):
    marker = tmp_path / "ran"
    path = pickle_payload(make_cfg, tmp_path / "evil.ckpt", marker)
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample.py"), f"ckpt={path}",
         f"paths.output_root={tmp_path / 'out'}"],
        cwd=ROOT, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: checkpoint {path} holds a pickled ")
    assert "Traceback" not in res.stderr
    assert not marker.exists()
