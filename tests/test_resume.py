"""Resume: full state in checkpoints, resumable data order and random streams, exactness.

The headline test kills ``scripts/train.py`` with SIGKILL in the middle of training, resumes
it in a second process and checks the final weights, EMA and optimizer state are bitwise
equal to those of the same run never interrupted (CPU, ``trainer.deterministic=true``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffusion_lab.data import toy2d
from diffusion_lab.data.datamodule import DiffusionDataModule, ResumableLoader, ResumableSampler
from diffusion_lab.lit.rng import TrainingRNG, get_rng_state
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.train import train

ROOT = Path(__file__).resolve().parents[1]

# Periodic checkpoints only: no sample grids or dashboards, whatever conf/callbacks holds.
CHECKPOINTS = [
    "callbacks=none",
    "+callbacks.checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
    "+callbacks.checkpoint.dirpath=${paths.checkpoint_dir}",
    "+callbacks.checkpoint.filename='step{step:07d}'",
    "+callbacks.checkpoint.auto_insert_metric_name=false",
    "+callbacks.checkpoint.save_top_k=-1",
]
QUIET = ["logger=none", "trainer.enable_progress_bar=false", "eval.enabled=false",
         "sampler.steps=3", "module.warmup_steps=3", "trainer.deterministic=true"]
TINY_UNET = ["backbone.base_channels=16", "backbone.groups=8", "backbone.num_heads=2",
             "data.module.batch_size=128"]  # 12 batches per epoch; dropout 0.1 draws random numbers
TINY_MLP = ["experiment=toy2d_moons", "backbone.hidden=32", "backbone.depth=2",
            "data.module.dataset.n=400", "data.module.batch_size=64"]  # 5 batches per epoch


@pytest.fixture
def one_thread():
    """One intra-op thread: fast on a shared machine, and the same reductions in every run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def every(k: int) -> list[str]:
    return [*CHECKPOINTS, f"+callbacks.checkpoint.every_n_train_steps={k}"]


def final_state(run_dir: Path) -> dict:
    return load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:  # backbone.*, ema.model.*, ema.num_updates
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"optimizer {k}"
    assert a["lr_schedulers"] == b["lr_schedulers"]


# -- data order ----------------------------------------------------------------------------------
def _loader(data, replicas=1, rank=0, batch_size=50):
    sampler = ResumableSampler(data, seed=3, num_replicas=replicas, rank=rank)
    return ResumableLoader(data, sampler=sampler, batch_size=batch_size, drop_last=True,
                           collate_fn=lambda b: b)


@pytest.mark.parametrize("replicas", [1, 2])
def test_loader_resumes_mid_epoch_with_the_same_batches(replicas):
    data = list(range(1000))
    for rank in range(replicas):
        full = _loader(data, replicas, rank)
        full.sampler.set_epoch(2)
        expected = [list(b) for b in full]
        first = _loader(data, replicas, rank)
        first.sampler.set_epoch(2)
        it = iter(first)
        seen = [list(next(it)) for _ in range(3)]
        state = first.state_dict()
        assert state["epoch"] == 2 and state["batches"] == 3

        resumed = _loader(data, replicas, rank)
        resumed.load_state_dict(state)
        resumed.sampler.set_epoch(2)  # what Lightning does at the start of the epoch
        rest = [list(b) for b in resumed]
        assert seen + rest == expected
        assert resumed.state_dict()["batches"] == len(expected)
        resumed.sampler.set_epoch(3)  # the next epoch starts at its beginning, in a new order
        assert [list(b) for b in resumed] != expected and len(resumed) == len(expected)


def test_loader_shards_are_disjoint_and_orders_depend_on_seed_and_epoch():
    data = list(range(1000))
    ranks = [set(_loader(data, 2, r).sampler) for r in range(2)]
    assert not ranks[0] & ranks[1] and len(ranks[0] | ranks[1]) == 1000
    a, b = _loader(data), _loader(data)
    assert list(a.sampler) == list(b.sampler)
    b.sampler.set_epoch(1)
    assert list(a.sampler) != list(b.sampler)


def test_loader_refuses_to_skip_with_another_batch_size(caplog):
    data = list(range(1000))
    state = {"epoch": 0, "batches": 4, "batch_size": 50, "num_replicas": 1}
    other = _loader(data, batch_size=25)
    other.load_state_dict(state)
    assert len(list(other)) == 40  # the whole epoch, with a warning
    assert "restarts from its beginning" in caplog.text


def test_datamodule_train_loader_is_resumable():
    dm = DiffusionDataModule(toy2d.two_moons(n=300), batch_size=32, seed=0)
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableLoader) and isinstance(loader.sampler, ResumableSampler)
    assert len(list(loader)) == len(dm.train_set) // 32


# -- random streams ------------------------------------------------------------------------------
def test_training_rng_ignores_draws_between_steps_and_round_trips():
    cb = TrainingRNG()
    torch.manual_seed(0)
    cb.on_train_batch_end(None, None, None, None, 0)
    expected = torch.rand(3)
    torch.rand(100)  # e.g. validation, between two training steps
    cb.on_train_batch_start(None, None, None, 1)
    assert torch.equal(torch.rand(3), expected)

    state = cb.state_dict()
    restored = TrainingRNG()
    restored.load_state_dict(state)
    torch.manual_seed(123)
    restored.on_train_batch_start(None, None, None, 1)
    assert torch.equal(torch.rand(3), expected)
    assert set(get_rng_state()) >= {"torch", "numpy", "python"}


def test_training_rng_with_another_world_size_warns(caplog):
    cb = TrainingRNG()
    cb.load_state_dict({"per_rank": [get_rng_state(), get_rng_state()]})
    assert cb._stash is None and "2 process(es)" in caplog.text


# -- in-process resume (fast) --------------------------------------------------------------------
def test_resume_mid_epoch_is_bitwise_exact_in_process(make_cfg, tmp_path, one_thread):
    """Resume at step 7 (epoch 1, batch 2 of 5) and run to step 12 across an epoch boundary."""
    opts = [*TINY_MLP, *QUIET, *every(7), "trainer.max_steps=12", "trainer.val_check_interval=3"]
    train(make_cfg(*opts, run_dir=tmp_path / "ref"))
    ckpt = tmp_path / "ref" / "checkpoints" / "step0000007.ckpt"
    saved = load_checkpoint_file(ckpt)
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 2, "batch_size": 64, "num_replicas": 1}
    ]
    assert saved["callbacks"]["TrainingRNG"]["per_rank"][0]["torch"].dtype == torch.uint8
    train(make_cfg(*opts, f"ckpt_path={ckpt}", run_dir=tmp_path / "resumed"))
    assert_same_training_state(final_state(tmp_path / "ref"), final_state(tmp_path / "resumed"))


# -- a real SIGKILL ------------------------------------------------------------------------------
def _start(tmp_path: Path, name: str, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"name={name}",
         f"paths.output_root={tmp_path}", *overrides],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob(pattern)):
        assert proc.poll() is None, f"training ended (rc {proc.returncode}) before {pattern} appeared"
        assert time.monotonic() < deadline, f"no {pattern} after {timeout}s"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_weights(tmp_path):
    """20 s on an idle 2-core machine, over 60 s on a busy one: three processes of one thread."""
    opts = [*TINY_UNET, *QUIET, *every(4), "trainer.max_steps=40", "trainer.val_check_interval=10"]
    reference = _start(tmp_path, "reference", *opts)
    victim = _start(tmp_path, "victim", *opts)
    _wait_for("victim/*/checkpoints/step0000008.ckpt", tmp_path, victim)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(60) == -signal.SIGKILL
    (killed_dir,) = (tmp_path / "victim").iterdir()
    steps = sorted(p.name for p in (killed_dir / "checkpoints").glob("step*.ckpt"))
    assert "step0000040.ckpt" not in steps, "the run finished before it was killed"

    resumed = _start(tmp_path, "victim", *opts, "resume=auto")  # the requeued job's command line
    assert resumed.wait(600) == 0, (tmp_path / "victim.log").read_text()[-3000:]
    assert reference.wait(600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    assert f"resuming from {killed_dir}" in (tmp_path / "victim.log").read_text()

    (ref_dir,) = (tmp_path / "reference").iterdir()
    resumed_dir = max((tmp_path / "victim").iterdir())
    assert resumed_dir != killed_dir
    assert_same_training_state(final_state(ref_dir), final_state(resumed_dir))


def test_resumed_wandb_run_continues_the_same_run(make_cfg, tmp_path, monkeypatch, one_thread):
    import diffusion_lab.tasks.train as train_task

    loggers = []
    original = train_task.build_logger
    monkeypatch.setattr(train_task, "build_logger", lambda *a, **k: loggers.append(original(*a, **k)) or loggers[-1])
    opts = [*TINY_MLP, *QUIET, *every(2), "logger=wandb", "trainer.max_steps=2"]
    train(make_cfg(*opts, run_dir=tmp_path / "first"))
    ckpt = load_checkpoint_file(tmp_path / "first" / "checkpoints" / "last.ckpt")
    assert ckpt["wandb_run_id"] == loggers[0].version

    train(make_cfg(*opts, "trainer.max_steps=4", f"ckpt_path={tmp_path / 'first'}", run_dir=tmp_path / "second"))
    assert loggers[1].version == loggers[0].version
    assert loggers[1]._wandb_init["resume"] == "allow"


@pytest.mark.slow
def test_two_process_ddp_resume_is_bitwise_exact(tmp_path):
    """trainer=ddp_cpu (2 processes, gloo): per-rank random streams and data shards resume."""
    opts = [*TINY_MLP, *QUIET, *every(4), "trainer=ddp_cpu", "data.module.batch_size=32",
            "trainer.max_steps=12", "trainer.val_check_interval=3"]
    assert _start(tmp_path, "ref", *opts).wait(600) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    (ref_dir,) = (tmp_path / "ref").iterdir()
    ckpt = ref_dir / "checkpoints" / "step0000004.ckpt"
    assert len(load_checkpoint_file(ckpt)["callbacks"]["TrainingRNG"]["per_rank"]) == 2
    assert _start(tmp_path, "res", *opts, f"ckpt_path={ckpt}").wait(600) == 0, (tmp_path / "res.log").read_text()[-3000:]
    (res_dir,) = (tmp_path / "res").iterdir()
    for step in ("step0000008.ckpt", "step0000012.ckpt"):  # written by rank 0 inside the workers
        a, b = (load_checkpoint_file(d / "checkpoints" / step) for d in (ref_dir, res_dir))
        assert_same_training_state(a, b)
