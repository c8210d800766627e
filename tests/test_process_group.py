"""A gloo process group is destroyed when the process exits (Lightning does so only for NCCL)."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One process, a world of one: the callback's setup registers the destroy at exit (once, however
# many fits), and the hook that dist.destroy_process_group() runs through reports that it ran
# at exit; without the callback the group is still alive when the interpreter shuts down.
SCRIPT = textwrap.dedent("""
    import atexit, sys
    import torch.distributed as dist
    from diffusion_lab.lit.process_group import DestroyProcessGroupAtExit

    dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
    if sys.argv[2] == "with":
        for _ in range(2):
            DestroyProcessGroupAtExit().setup(None, None, "fit")
    real = dist.destroy_process_group
    def traced(*args, **kwargs):
        real(*args, **kwargs)
        print("destroyed at exit", flush=True)
    dist.destroy_process_group = traced
    # registered last, so it runs first (atexit is LIFO): reports what is alive at exit
    atexit.register(lambda: print("alive at exit:", dist.is_initialized(), flush=True))
    print("registered:", atexit._ncallbacks(), flush=True)
""")


def _run(tmp_path, mode):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"pg_{mode}"), mode],
                          cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout


def test_gloo_group_is_destroyed_at_exit_once(tmp_path):
    with_cb, without = _run(tmp_path, "with"), _run(tmp_path, "without")
    n_with = int(with_cb.split("registered:")[1].split()[0])
    n_without = int(without.split("registered:")[1].split()[0])
    assert n_with == n_without + 1  # one handler for two setups
    assert "destroyed at exit" in with_cb
    assert "destroyed at exit" not in without and "alive at exit: True" in without
