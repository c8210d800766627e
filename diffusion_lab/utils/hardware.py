"""What the machine offers: native bf16, and the training precision that suits it."""

from __future__ import annotations

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run in hardware here (CUDA with bf16, or a CPU with AVX-512 BF16 /
    AMX); elsewhere PyTorch emulates them, ~100x slower than fp32, and timing them says nothing."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probe = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    if "AVX512" not in probe.upper() and "AMX" not in probe.upper():
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def auto_precision(accelerator: str) -> str:
    """Lightning's ``precision`` for ``trainer.precision=auto``: ``bf16-mixed`` where bf16 runs in
    hardware (a CPU with AVX-512 BF16 / AMX, a CUDA GPU with bf16), ``32-true`` elsewhere (an
    AVX2-only CPU emulates bf16, several times slower than fp32)."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    return "bf16-mixed" if native_bf16(device) else "32-true"
