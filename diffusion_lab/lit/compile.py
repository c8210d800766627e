"""torch.compile for the module's networks (``module.compile=true``), in place.

``nn.Module.compile`` routes a module's ``__call__`` through ``torch.compile`` without wrapping
it: the parameters, buffers and ``state_dict`` keys stay those of the plain module (no
``_orig_mod.`` prefix), so a checkpoint of a compiled run loads into an uncompiled module and
the other way round, and EMA updates (in place, ``torch._foreach_lerp_``) reach the compiled
network, whose graph reads the parameters as inputs.

Compilation is deferred to the first use in the process that runs it (``on_fit_start`` for
training, the first ``denoiser()`` for sampling): a module handed to spawned DDP workers is
pickled before any compiled code exists, and each worker compiles its own copy.

Sampling on CUDA defaults to ``mode="reduce-overhead"`` (CUDA graphs: a denoiser is called many
times on same-shaped inputs, so replaying a captured graph removes the per-kernel launch cost);
elsewhere the training mode is used.
"""

from __future__ import annotations

import torch
from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile_mode(mode: str | None, name: str = "compile_mode") -> str | None:
    """``mode`` if torch.compile knows it (or None), else ValueError in one line."""
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f"{name} must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    return mode


def is_compiled(net: nn.Module) -> bool:
    return getattr(net, "_compiled_call_impl", None) is not None


def compile_in_place(net: nn.Module, mode: str = "default", backend: str = "inductor") -> nn.Module:
    """``net`` itself, its calls now compiled (once: a compiled module is left as it is).
    ``mode`` applies to the inductor backend; others (``aot_eager``: graph capture and
    autograd without code generation, for debugging) take none."""
    if not is_compiled(net):
        kwargs = {"mode": check_compile_mode(mode)} if backend == "inductor" else {}
        net.compile(backend=backend, **kwargs)
    return net


def sampling_mode(training_mode: str, sampling: str | None, device: torch.device) -> str:
    """The mode of the sampling network: ``sampling`` if given, else CUDA graphs on CUDA
    ("reduce-overhead") when training uses the default mode, else the training mode."""
    if sampling is not None:
        return sampling
    if device.type == "cuda" and training_mode == "default":
        return "reduce-overhead"
    return training_mode


class CompileOptions:
    """What ``module.compile*`` asks for; applies it to the training and sampling networks."""

    def __init__(self, enabled: bool = False, mode: str = "default", sampling_mode: str | None = None,
                 backend: str = "inductor"):
        if not isinstance(enabled, bool):
            raise TypeError(f"compile must be true or false, got {enabled!r}")
        self.enabled = enabled
        self.mode = check_compile_mode(mode) or "default"
        self.sampling_mode = check_compile_mode(sampling_mode, "compile_sampling_mode")
        if backend not in torch._dynamo.list_backends(exclude_tags=()):
            raise ValueError(f"compile_backend must be one of "
                             f"{', '.join(torch._dynamo.list_backends())}, got {backend!r}")
        self.backend = backend

    @classmethod
    def from_config(cls, module_cfg) -> CompileOptions:
        """From the ``module`` config group (keys absent in older checkpoints: off)."""
        return cls(module_cfg.get("compile", False), module_cfg.get("compile_mode", "default"),
                   module_cfg.get("compile_sampling_mode"), module_cfg.get("compile_backend", "inductor"))

    def training(self, net: nn.Module) -> nn.Module:
        return compile_in_place(net, self.mode, self.backend) if self.enabled else net

    def sampling(self, net: nn.Module, device: torch.device) -> nn.Module:
        if not self.enabled:
            return net
        return compile_in_place(net, sampling_mode(self.mode, self.sampling_mode, device),
                                self.backend)
