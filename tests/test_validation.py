"""Bad input: each wrong config value, data set or checkpoint fails with one readable line.

Tables: BAD_CONFIGS (checked before anything is built), BAD_DATA (the datamodule), and
BAD_CHECKPOINTS (sampling from a checkpoint), plus the same refusals through the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.tasks.build import (
    build_datamodule,
    build_module,
    config_to_dict,
    module_from_checkpoint,
)
from diffusion_lab.tasks.errors import USER_ERRORS
from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file
from diffusion_lab.tasks.train import train
from diffusion_lab.tasks.validate import ConfigError, validate_train_config

ROOT = Path(__file__).resolve().parents[1]

# (overrides, the message the user must see). Most lines are the constructors' own messages:
# validation builds the model (backbone on the meta device), sampler, datamodule and Trainer.
BAD_CONFIGS = [
    (["sampler.steps=0"], "sampler: SamplerSpec.steps must be an integer >= 1, got 0"),
    (["sampler.steps=-3"], "sampler: SamplerSpec.steps must be an integer >= 1, got -3"),
    (["sampler=ddim", "sampler.steps=2000"], "sampler: UniformSpacing: num_steps=2000 exceeds the 1000 training timesteps"),
    (["sampler.steps=ten"], "sampler: SamplerSpec.steps must be an integer >= 1, got 'ten'"),
    (["trainer.max_steps=0"], "trainer.max_steps must be >= 1, got 0"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be an integer >= 1, got 'abc'"),
    (["guidance.scale=-1"], "guidance scale must be a finite number >= 0 (1 = no guidance), got -1"),
    (["guidance.scale=strong"], "guidance scale must be a number, got 'strong'"),
    (["guidance.scale=nan"], "guidance.scale must be a finite number, got nan"),
    (["guidance.label_dropout=1.5"], "label dropout must be in [0, 1], got 1.5"),
    (["guidance.label_dropout=-0.1"], "label dropout must be in [0, 1], got -0.1"),
    (["guidance.label_dropout=nan"], "guidance.label_dropout must be a finite number, got nan"),
    (["data.module.batch_size=0"], "data.module: batch_size must be an integer >= 1, got 0"),
    (["data.module.val_fraction=1.0"], "data.module: val_fraction must lie in [0, 1), got 1.0"),
    (["data.module.val_fraction=nan"], "data.module.val_fraction must be a finite number, got nan"),
    (["data.module.num_workers=-1"], "data.module: num_workers must be >= 0, got -1"),
    (["data.module.dedup=-0.1"], "data.module: dedup must be null or a finite RMS distance >= 0, got -0.1"),
    (["schedule.num_steps=1"], "schedule: num_steps must be an integer >= 2, got 1"),
    (["module.optimizer.lr=0"], "module.optimizer.lr must be > 0, got 0"),
    (["module.optimizer.lr=-1e-3"], "module.optimizer: Invalid learning rate: -0.001"),
    (["module.optimizer.lr=nan"], "module.optimizer.lr must be a finite number, got nan"),
    (["module.optimizer.lr=inf"], "module.optimizer.lr must be a finite number, got inf"),
    (["module.ema_decay=1.0"], "ema decay must be in [0, 1), got 1.0"),
    (["module.ema_decay=nan"], "module.ema_decay must be a finite number, got nan"),
    (["module.warmup_steps=-1"], "warmup_steps must be an integer >= 0, got -1"),
    (["sampler=ddim", "sampler.solver.eta=2"], "sampler: ddim eta must lie in [0, 1], got 2"),
    (["sampler=dpmpp_2s", "sampler.solver.variant=bogus"],
     "sampler: dpmpp_2s variant must be one of ('midpoint', 'heun'), got 'bogus'"),
    (["eval.samples_per_class=0"], "eval.samples_per_class must be >= 1, got 0"),
    (["eval.guidance_scale=-1"], "eval.guidance_scale must be a finite number >= 0 (1 = no guidance), got -1"),
    (["guidance=none", "eval.guidance_scale=3"],
     "eval.guidance_scale=3 needs the null label, which this model never trained (label dropout 0, guidance=none)"),
    (
        ["schedule.zero_terminal_snr=true"],
        "EpsPrediction cannot be used with a zero-terminal-SNR schedule",
    ),
    (
        ["backbone.channel_mult=[1,2,2,2,2]"],
        "backbone: UNet: image_size=8 must be divisible by 2**(levels-1)=16 for channel_mult=(1, 2, 2, 2, 2)",
    ),
    (
        ["backbone.attention_resolutions=[16]"],
        "backbone: UNet: attention_resolutions [16] not among the feature-map sizes [8, 4]",
    ),
    (["backbone.num_heads=3"], "backbone: attention: num_heads=3 must divide width 64"),
    (["backbone.groups=5"], "backbone: UNet: groups=5 must divide every width, not [32, 64]"),
    (
        ["experiment=digits_dit", "backbone.patch_size=3"],
        "backbone: DiT: image_size=8 must be divisible by patch_size=3",
    ),
    (["experiment=digits_dit", "backbone.num_heads=5"], "backbone: DiT: num_heads=5 must divide hidden_size="),
    (
        ["data=toy2d", "backbone=mlp", "data.num_classes=0", "guidance.scale=3"],
        "guidance scale=3 needs a class-conditional model, but this one has no labels (use 1)",
    ),
    (["module.max_consecutive_nonfinite=0"], "max_consecutive_nonfinite must be >= 1, got 0"),
    (["resume=sometimes"], "resume must be auto or false, got 'sometimes'"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be >= 1, got 0"),
    (["trainer.devices=0"], "trainer: `Trainer(devices=0)` value is not a valid input"),
    (["trainer.precision=bf16mixed"], "trainer: Precision 'bf16mixed' is invalid."),
    (["seed=1.5"], "seed must be an integer >= 0, got 1.5"),
    (["seed=abc"], "seed must be an integer >= 0, got 'abc'"),
    (["callbacks.guidance_sweep.scales=[1,-2]"], "callbacks.guidance_sweep: guidance sweep scale must be a finite number >= 0"),
    (["data.module.dataset._target_=no.such.dataset"], "data.module.dataset: Error locating target 'no.such.dataset'"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_config_is_refused_with_message(make_cfg, overrides, message):
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_default_config_is_valid(make_cfg):
    validate_train_config(make_cfg())


def test_good_zero_snr_config_is_valid(make_cfg):
    validate_train_config(make_cfg("schedule.zero_terminal_snr=true", "objective=v"))


def run_train(tmp_path, *overrides):
    env = {**os.environ, "WANDB_MODE": "offline", "DIFFUSION_LAB_DATA": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"paths.output_root={tmp_path}",
         "logger=none", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


# End to end through scripts/train.py: exit status and the one line the user reads.
CLI_CASES = [
    (["sampler.steps=0"], 2, "error: sampler: SamplerSpec.steps must be an integer >= 1, got 0"),
    (["backbone.groups=5"], 2, "error: backbone: UNet: groups=5 must divide every width, not [32, 64]"),
    (["module.ema_decay=nan"], 2, "error: module.ema_decay must be a finite number, got nan"),
    (["experiment=mnist"], 2, "error: MNIST: missing train-images-idx3-ubyte.gz"),
    (["ckpt_path=/nonexistent/last.ckpt"], 2, "error: checkpoint not found: /nonexistent/last.ckpt"),
    # Composition errors, Hydra's own message folded into one line (tasks/overrides.py).
    (["schedule=foo"], 2,
     "error: In 'train': Could not find 'schedule/foo'; options: cosine, linear, linear_flow, sigmoid"),
    (["trainer.max_stepz=3"], 2, ("error: Could not override 'trainer.max_stepz'. To append to your "
                                 "config use +trainer.max_stepz=3 (Key 'max_stepz' is not in struct)")),
    # A sweep's bad value is refused before its first job trains (Hydra alone would train
    # schedule=linear, then fail on cosinee).
    (["-m", "schedule=linear,cosinee"], 2,
     "error: schedule=cosinee: In 'train': Could not find 'schedule/cosinee'"),
    (["schedule=linear,cosine"], 2, "error: schedule=linear,cosine: several values sweep only with -m"),
]


@pytest.mark.parametrize(("overrides", "code", "message"), CLI_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_refuses_before_training(tmp_path, overrides, code, message):
    res = run_train(tmp_path, *overrides)
    assert res.returncode == code, res.stderr[-2000:]
    assert message in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: "), res.stderr[-2000:]
    # Nothing was trained: no checkpoint anywhere under the output root.
    assert not list(tmp_path.rglob("*.ckpt"))


# -- bad data: the datamodule refuses it, naming the dataset and what is wrong ------------------
def filled(value: float, n: int = 64, image: bool = True) -> ArrayDataset:
    """A user's own dataset callable (data.module.dataset._target_) returning constant data."""
    shape = (n, 1, 8, 8) if image else (n, 2)
    return ArrayDataset(torch.full(shape, value), None, name="filled",
                        value_range=(-1.0, 1.0) if image else None)


def _png(path: Path, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 128, np.uint8)).save(path)


def image_folder(root: Path, good: int = 0, corrupt: int = 0, text: int = 0, strict: bool = False):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        _png(root / f"ok{i}.png")
    for i in range(corrupt):
        (root / f"broken{i}.png").write_bytes(b"\x89PNG truncated")
    for i in range(text):
        (root / f"notes{i}.txt").write_text("not an image")
    return ["data=image_folder", f"data.module.dataset.root={root}", "data.image_size=8",
            "data.channels=1", f"data.module.dataset.strict={str(strict).lower()}",
            "data.module.batch_size=1"]


# (setup(tmp_path) -> overrides, the message the user must see)
BAD_DATA = {
    "corrupt image, strict": (
        lambda d: image_folder(d / "imgs", good=3, corrupt=1, strict=True),
        "data=image_folder: image_folder({d}/imgs): cannot decode image {d}/imgs/broken0.png",
    ),
    "empty folder": (
        lambda d: image_folder(d / "imgs"),
        "image_folder({d}/imgs): no readable images with extensions",
    ),
    "only non-image files": (
        lambda d: image_folder(d / "imgs", text=2),
        "image_folder({d}/imgs): no readable images with extensions",
    ),
    "missing folder": (
        lambda d: ["data=image_folder", f"data.module.dataset.root={d}/nowhere"],
        "image_folder({d}/nowhere): folder {d}/nowhere does not exist",
    ),
    "mnist offline": (
        lambda d: ["data=mnist", f"paths.data_dir={d}"],
        "MNIST: missing train-images-idx3-ubyte.gz",
    ),
    "cifar10 offline": (
        lambda d: ["data=cifar10", f"paths.data_dir={d}"],
        "download=True",
    ),
    "NaN in array data": (
        lambda d: ["data.module.dataset._target_=test_validation.filled", "+data.module.dataset.value=nan"],
        "data=digits: filled: data contains 4096 NaN/inf values",
    ),
    "images out of range": (
        lambda d: ["data.module.dataset._target_=test_validation.filled", "+data.module.dataset.value=3.0"],
        "data=digits: filled: values must lie in [-1.0, 1.0] after scaling, got [3, 3]",
    ),
    "wrong number of classes": (
        lambda d: ["data.num_classes=5"],
        "data.num_classes=5 but the digits data has 10 classes",
    ),
    "batch larger than the data": (
        lambda d: ["data=toy2d", "data.module.dataset.n=100"],
        "two_moons: 95 training samples < batch_size=512 with drop_last=True would give zero batches",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_refused_with_message(make_cfg, tmp_path, case):
    setup, message = BAD_DATA[case]
    cfg = make_cfg(*setup(tmp_path))
    with pytest.raises(USER_ERRORS) as info:
        build_datamodule(cfg)
    text = str(info.value)
    assert message.format(d=tmp_path) in text
    assert "\n" not in text


def test_corrupt_and_non_image_files_are_skipped_with_a_counted_warning(make_cfg, tmp_path):
    cfg = make_cfg(*image_folder(tmp_path / "imgs", good=3, corrupt=1, text=1))
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\): 1 undecodable image\(s\) .*1 non-image file"):
        dm = build_datamodule(cfg)
    assert len(dm.train_set) + len(dm.val_set) == 3


# -- checkpoints that cannot be sampled from (or resumed) ---------------------------------------
SMALL_UNET = ["backbone.base_channels=16", "backbone.groups=8", "backbone.num_heads=2"]


def write_checkpoint(make_cfg, path: Path, *overrides: str, edit=None, base=SMALL_UNET) -> Path:
    """A checkpoint as training writes it (model, config, model facts); ``edit`` changes the
    stored config afterwards, as if the file came from another version or another run."""
    cfg = make_cfg(*base, *overrides)
    module = build_module(cfg)
    ckpt = {"state_dict": module.state_dict(), "diffusion_lab_config": config_to_dict(cfg),
            "diffusion_lab_model": module.model_facts(), "global_step": 0}
    if edit:
        edit(ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def edited(**changes):
    """Write a checkpoint whose stored config then gets ``group__key=value`` changes."""
    def make(make_cfg, path, *overrides):
        def edit(ckpt):
            for key, value in changes.items():
                group, name = key.split("__")
                ckpt["diffusion_lab_config"][group][name] = value
        return write_checkpoint(make_cfg, path, *overrides, edit=edit)
    return make


def garbage(make_cfg, path):
    path.write_bytes(b"hello")
    return path


def truncated(make_cfg, path):
    data = write_checkpoint(make_cfg, path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def foreign(make_cfg, path):
    torch.save({"weights": torch.ones(2)}, path)
    return path


def nan_weights(make_cfg, path):
    def edit(ckpt):
        ckpt["state_dict"]["backbone.input_conv.weight"][0, 0, 0, 0] = float("nan")
    return write_checkpoint(make_cfg, path, edit=edit)


def dit_as_unet(make_cfg, path):
    unet = config_to_dict(make_cfg(*SMALL_UNET))["backbone"]

    def edit(ckpt):
        ckpt["diffusion_lab_config"]["backbone"] = unet
    dit = ["experiment=digits_dit", "backbone.hidden_size=32", "backbone.depth=1"]
    return write_checkpoint(make_cfg, path, *dit, edit=edit, base=())


# (write(make_cfg, path) -> path, the message the user must see)
BAD_CHECKPOINTS = {
    "not a checkpoint": (garbage, "checkpoint {p} is unreadable"),
    "truncated": (truncated, "checkpoint {p} is unreadable"),
    "missing": (lambda make_cfg, path: path, "checkpoint not found: {p}"),
    "not from diffusion-lab": (foreign, "{p} has no diffusion_lab_config: not written by diffusion-lab"),
    "different backbone shape": (
        edited(backbone__base_channels=32),
        ("{p} does not fit the model the config stored in it builds (a different backbone shape): "
        "backbone.time_embed.mlp.0.weight is [64, 16] in the checkpoint, [128, 32] in the model"),
    ),
    "different number of classes": (
        edited(data__num_classes=5, backbone__num_classes=5),
        "{p} was trained on 10 classes, but the config stored in it builds a model for 5 classes",
    ),
    "different image size": (
        edited(data__image_size=16, backbone__image_size=16, backbone__attention_resolutions=[8]),
        ("{p} was trained on data of shape 1x8x8, but the config stored in it builds a model for "
        "data of shape 1x16x16"),
    ),
    "different backbone": (
        dit_as_unet,
        "{p} was trained on backbone DiT, but the config stored in it builds a model for backbone UNet",
    ),
    "config no longer builds": (
        edited(backbone__no_such_option=1),
        ("{p}: cannot rebuild the model from the config stored in it (TypeError: "
        "UNet.__init__() got an unexpected keyword argument 'no_such_option')"),
    ),
    "NaN weights": (nan_weights, "{p} holds non-finite weights: backbone.input_conv.weight has 1 NaN/inf values"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_for_sampling_is_refused_with_message(make_cfg, tmp_path, case):
    make, message = BAD_CHECKPOINTS[case]
    path = make(make_cfg, tmp_path / "model.ckpt")
    with pytest.raises(USER_ERRORS) as info:
        module_from_checkpoint(load_checkpoint_file(path), path=path)
    text = str(info.value)
    assert message.format(p=path) in text
    assert "\n" not in text


def test_resume_from_an_incompatible_checkpoint_is_refused_before_training(make_cfg, tmp_path):
    path = write_checkpoint(make_cfg, tmp_path / "old" / "model.ckpt")
    cfg = make_cfg("backbone.base_channels=8", "backbone.groups=4", "backbone.num_heads=2",
                   f"ckpt_path={path}", "logger=none")
    with pytest.raises(CheckpointError, match=(
        f"{path} does not fit the model this run's config builds .a different backbone shape.: "
        r"backbone.time_embed.mlp.0.weight is \[64, 16\] in the checkpoint, \[32, 8\] in the model"
    )):
        train(cfg)
    assert not list(tmp_path.rglob("last.ckpt"))


def run_script(script, tmp_path, *overrides):
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), f"paths.output_root={tmp_path / 'out'}", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_cli_refuses_bad_data_and_incompatible_checkpoints(make_cfg, tmp_path):
    """The same refusals end to end: one line, exit status 2, no traceback, nothing trained."""
    corrupt = image_folder(tmp_path / "imgs", good=2, corrupt=1, strict=True)
    res = run_script("train.py", tmp_path, *corrupt, "logger=none")
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith(
        f"error: data=image_folder: image_folder({tmp_path}/imgs): cannot decode image")

    path = edited(data__num_classes=5, backbone__num_classes=5)(make_cfg, tmp_path / "model.ckpt")
    res = run_script("sample.py", tmp_path, f"ckpt={path}")
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: {path} was trained on 10 classes, but the config stored in it builds a model for 5 classes")
    assert "Traceback" not in res.stderr
    assert not list((tmp_path / "out").rglob("*.png")) and not list((tmp_path / "out").rglob("*.ckpt"))


# -- the sampling CLI: its own values, and guidance the checkpoint's model cannot take ------------
UNCONDITIONAL = ("data=toy2d", "backbone=mlp", "data.num_classes=0", "backbone.hidden=16")
# (checkpoint's training overrides, sampling overrides, the message the user must see)
BAD_SAMPLING = {
    "batch_size=0": ((), ["batch_size=0"], "batch_size must be >= 1, got 0"),
    "num_samples=-1": ((), ["num_samples=-1"], "num_samples must be >= 1, got -1"),
    "seed=x": ((), ["seed=x"], "seed must be an integer >= 0, got 'x'"),
    "metrics=yes": ((), ["metrics=yes"], "metrics must be true or false, got 'yes'"),
    "guidance.scale=nan": ((), ["guidance.scale=nan"], "guidance.scale must be a finite number, got nan"),
    "steps beyond T": ((), ["sampler=ddim", "sampler.steps=2000"],
                       "sampler: UniformSpacing: num_steps=2000 exceeds the 1000 training timesteps"),
    "guided, unconditional model": (
        UNCONDITIONAL, ["guidance.scale=3"],
        "guidance.scale=3 needs a class-conditional model, but this one has no labels (use 1)"),
    "guided, null label never trained": (
        ("guidance=none",), ["guidance.scale=3"],
        "guidance.scale=3 needs the null label, which this model never trained (label dropout 0, guidance=none)"),
    "w=0, null label never trained": (
        ("guidance=none",), ["guidance.scale=0"],
        "guidance.scale=0 needs the null label, which this model never trained"),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLING))
def test_bad_sampling_request_is_refused_before_sampling(make_cfg, tmp_path, case):
    from diffusion_lab.tasks.sample import sample

    trained, overrides, message = BAD_SAMPLING[case]
    base = () if trained == UNCONDITIONAL else SMALL_UNET
    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt", *trained, base=base)
    run_dir = tmp_path / "sample"
    run_dir.mkdir()
    cfg = make_cfg(f"ckpt={path}", "metrics=false", *overrides, config_name="sample", run_dir=run_dir)
    with pytest.raises(ConfigError) as info:
        sample(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert list(run_dir.iterdir()) == []  # nothing sampled, nothing written


def test_guided_sampling_of_a_guidance_trained_model_is_accepted(make_cfg, tmp_path):
    from diffusion_lab.tasks.sample import sample

    path = write_checkpoint(make_cfg, tmp_path / "model.ckpt")
    cfg = make_cfg(f"ckpt={path}", "metrics=false", "guidance.scale=0", "samples_per_class=1",
                   "sampler.steps=2", config_name="sample", run_dir=tmp_path / "sample")
    (tmp_path / "sample").mkdir()
    assert sample(cfg)["guidance_scale"] == 0
