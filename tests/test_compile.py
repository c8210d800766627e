"""module.compile=true: the backbone trains compiled and the EMA network samples compiled, while
checkpoints keep the plain module's keys, so compiled and uncompiled runs load and resume each
other's checkpoints. The trained run uses the ``aot_eager`` backend (dynamo graph capture and
AOT autograd, the parts that touch hooks, parameters and state; no C++ code generation, which
takes tens of seconds on a CPU); inductor itself is measured by ``scripts/benchmark.py
--compile``."""

from __future__ import annotations

import pytest
import torch
from test_resume import one_thread  # noqa: F401

from diffusion_lab.lit.compile import CompileOptions, is_compiled, sampling_mode
from diffusion_lab.tasks.build import build_module
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.train import train
from diffusion_lab.tasks.validate import validate_train_config

TINY = ["logger=none", "callbacks=none", "+callbacks.checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "+callbacks.checkpoint.dirpath=${paths.checkpoint_dir}", "+callbacks.checkpoint.save_last=true",
        "trainer.max_steps=3", "trainer.enable_progress_bar=false", "trainer.val_check_interval=3",
        "data.module.batch_size=16", "sampler.steps=3", "eval.enabled=false",
        "module.warmup_steps=0", "backbone.base_channels=16", "backbone.groups=8",
        "backbone.num_heads=2", "backbone.num_res_blocks=1"]


def test_compile_options_refuse_unknown_modes_and_backends():
    with pytest.raises(ValueError, match="compile_mode must be one of default, reduce-overhead"):
        CompileOptions(True, "fastest")
    with pytest.raises(ValueError, match="compile_backend must be one of"):
        CompileOptions(True, backend="no_such_backend")
    # CUDA graphs for sampling on CUDA only, unless a mode is given
    assert sampling_mode("default", None, torch.device("cuda")) == "reduce-overhead"
    assert sampling_mode("default", None, torch.device("cpu")) == "default"
    assert sampling_mode("max-autotune", None, torch.device("cuda")) == "max-autotune"
    assert sampling_mode("default", "max-autotune", torch.device("cuda")) == "max-autotune"


def test_bad_compile_mode_is_one_line_before_any_work(make_cfg):
    with pytest.raises(ConfigError, match="compile_mode must be one of") as info:
        validate_train_config(make_cfg("module.compile=true", "module.compile_mode=fastest"))
    assert "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_compiled_run_checkpoints_load_into_plain_modules_and_back(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "module.compile=true", "module.compile_backend=aot_eager",
                   run_dir=tmp_path / "compiled")
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    train(cfg)
    assert counters["stats"]["unique_graphs"] >= 1  # the training step ran through dynamo
    ckpt = load_checkpoint_file(tmp_path / "compiled" / "checkpoints" / "last.ckpt")
    keys = set(ckpt["state_dict"])
    plain = build_module(make_cfg(*TINY, run_dir=tmp_path / "plain"))
    assert keys == set(plain.state_dict())  # no _orig_mod. anywhere
    plain.load_state_dict(ckpt["state_dict"])  # strict
    assert int(plain.ema.num_updates) == 3  # the EMA was updated through the compiled weights
    assert not torch.equal(plain.ema.model.out_conv.weight, torch.zeros_like(plain.ema.model.out_conv.weight))

    # the same weights sample the same images compiled and uncompiled
    compiled = build_module(cfg)
    compiled.load_state_dict(ckpt["state_dict"])
    labels = torch.arange(4)
    x_plain = plain.sample(labels=labels, seed=3)
    x_compiled = compiled.sample(labels=labels, seed=3)
    assert is_compiled(compiled.ema.model) and not is_compiled(plain.ema.model)
    torch.testing.assert_close(x_compiled, x_plain, rtol=1e-4, atol=1e-5)

    # an uncompiled run resumes the compiled run's checkpoint
    last = tmp_path / "compiled" / "checkpoints" / "last.ckpt"
    resumed = train(make_cfg(*TINY, "trainer.max_steps=5", f"ckpt_path={last}",
                             run_dir=tmp_path / "resumed"))
    assert resumed["global_step"] == 5
