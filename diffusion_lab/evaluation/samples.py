"""Drawing the samples an evaluation judges, and saying how they were drawn."""

from __future__ import annotations

import torch

from diffusion_lab.lit.generate import generate


def grid_labels(num_classes: int, per_class: int) -> torch.Tensor:
    """[0]*per_class + [1]*per_class + ...: row c of a grid holds class c."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def sampler_name(spec) -> str:
    """The solver function's name of a SamplerSpec ('dpmpp_2m')."""
    solver = getattr(spec.solver, "func", spec.solver)
    return getattr(solver, "__name__", str(solver))


def describe_sampler(spec) -> str:
    """'dpmpp_2m, uniform spacing, 20 steps, NFE 20' for a SamplerSpec."""
    spacing = type(spec.spacing).__name__.removesuffix("Spacing").lower()
    return f"{sampler_name(spec)}, {spacing} spacing, {spec.steps} steps, NFE {spec.nfe}"


@torch.no_grad()
def generate_samples(module, labels: torch.Tensor | None, num_samples: int, *, seed: int,
                     guidance_scale: float | None, batch_size: int = 500, sampler=None,
                     distributed: bool = True, progress: str | None = None) -> torch.Tensor:
    """Samples from the EMA weights in batches; sample i uses the noise of (seed, i), so every
    evaluation with the same seed sees the same noise whatever the batch size.

    ``labels``: class of each sample (then ``num_samples`` is ``len(labels)``), or None.
    ``sampler``: a SamplerSpec, default the module's. With ``distributed`` every rank of a
    process group must call it: each draws its share and all get the full, index-ordered set,
    the same samples as one process would draw (``diffusion_lab.lit.generate``)."""
    return generate(module, sampler, labels=labels, num_samples=num_samples, seed=seed,
                    batch_size=batch_size, guidance_scale=guidance_scale, use_ema=True,
                    distributed=distributed, progress=progress)
