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
    return interleaved_median_seconds({"fn": fn}, device, warmup, repeats)["fn"]


def interleaved_median_seconds(fns: dict[str, Callable[[], object]], device: torch.device,
                               warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each of ``fns``, timed in alternation: round r runs them in
    the given order for even r and reversed for odd r (A B, B A, A B, ...), so a machine whose
    speed drifts during the measurement (a shared VM, a clock that throttles) and whatever one
    call leaves in the caches for the next favour no side of a comparison."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(1, repeats)):
        for name in (names if r % 2 == 0 else names[::-1]):
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


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
