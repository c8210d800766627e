"""Timing and FLOP counting the way the PyTorch performance guides recommend: warm-up runs,
then the median of repeated runs, synchronising the device around each one."""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_lab.utils.hardware import native_bf16  # noqa: F401  (re-exported)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def significant(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant figures (a rate of a tiny model on a busy
    machine stays non-zero, a large one keeps no false precision)."""
    return float(f"{x:.{digits}g}")


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def allocated_mib(device: torch.device) -> float | None:
    """Memory in use now, MiB: CUDA's caching allocator on CUDA; on a CPU, glibc's
    ``mallinfo2`` (bytes in use in all malloc arenas + mmap-ed blocks, which is where PyTorch's
    CPU tensors live); None where neither is available."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    info = fn()
    return (info.uordblks + info.hblkhd) / 2**20
