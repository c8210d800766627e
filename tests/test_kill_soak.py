"""Fault-injection soak: SIGKILL a training run at several points, resume it each time with the
same command line (``resume=auto``), and require the final weights, EMA and optimizer state of
the run never interrupted, bitwise (CPU, deterministic mode), with every checkpoint left
behind readable.

Kill points: two random moments (seeded), one inside a checkpoint write (the write is slowed
down so the kill lands between the temporary file and its rename) and one inside the
end-of-training callbacks (after the final checkpoint, before metrics.json). Bounded: six
processes of one thread, about 1-2 minutes on a 2-core machine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_resume import CHECKPOINTS, QUIET, TINY_MLP, assert_same_training_state

from diffusion_lab.tasks.io import load_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]
STEPS = 30
OPTS = [*TINY_MLP, *QUIET, *CHECKPOINTS, "+callbacks.checkpoint.every_n_train_steps=4",
        f"trainer.max_steps={STEPS}", "trainer.val_check_interval=5",
        # an end-of-training callback to be killed in: the sample grid at the last step
        "+callbacks.grid._target_=diffusion_lab.callbacks.sample_grid.SampleGrid",
        "+callbacks.grid.every_n_steps=10", "+callbacks.grid.num_points=200000", "sampler.steps=20"]

# Runs scripts/train.py; with SLOW_WRITE set, every checkpoint write pauses after the data is in
# the temporary file and before fsync + rename, so a kill can land inside it.
LAUNCH = """
import os, runpy, sys, time, torch
real = torch.save
def save(obj, f, *a, **k):
    real(obj, f, *a, **k)
    time.sleep(float(os.environ.get("SLOW_WRITE", "0")))
torch.save = save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start(tmp_path: Path, name: str, slow_write: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "SLOW_WRITE": str(slow_write)}
    log = open(tmp_path / f"{name}.log", "a")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(ROOT / "scripts" / "train.py"), f"name={name}",
         f"paths.output_root={tmp_path}", "resume=auto", *OPTS],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_until(condition, proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll ``condition`` every 5 ms; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
    return True


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_weights(tmp_path):
    rng = random.Random(15)
    reference = start(tmp_path, "reference")
    victim_dir = tmp_path / "victim"
    ckpts = lambda pattern: list(victim_dir.glob(f"*/checkpoints/{pattern}"))
    kills = []

    # 1-2: random moments after the first checkpoint
    for _ in range(2):
        proc = start(tmp_path, "victim")
        wait_until(lambda: ckpts("step*.ckpt"), proc)
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            kill(proc)
            kills.append("random")
    # 3: inside a checkpoint write (a temporary file exists, not yet renamed)
    proc = start(tmp_path, "victim", slow_write=0.5)
    if wait_until(lambda: ckpts(".*.tmp-*"), proc):
        kill(proc)
        kills.append("in a checkpoint write")
    # 4: inside the end-of-training callbacks: last.ckpt (step 30) written, metrics.json not yet
    proc = start(tmp_path, "victim")
    if wait_until(lambda: ckpts("last.ckpt") and not list(victim_dir.glob("*/metrics.json")), proc):
        kill(proc)
        kills.append("in the end-of-training callbacks")
    # the requeued job runs to the end
    final = start(tmp_path, "victim")
    assert final.wait(600) == 0, (tmp_path / "victim.log").read_text()[-3000:]
    assert reference.wait(600) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    assert len(kills) == 4, kills
    (ref_dir,) = (tmp_path / "reference").iterdir()
    done = [d for d in victim_dir.iterdir() if (d / "metrics.json").exists()]
    assert len(done) == 1
    assert_same_training_state(load_checkpoint_file(ref_dir / "checkpoints" / "last.ckpt"),
                               load_checkpoint_file(done[0] / "checkpoints" / "last.ckpt"))
    for path in victim_dir.rglob("*.ckpt"):  # nothing unreadable left behind
        assert load_checkpoint_file(path)["global_step"] > 0, path
