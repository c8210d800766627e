"""Timestep-embedding health: how much a backbone's output changes with t at a fixed input.

For inputs x_1..x_n and timesteps t_1..t_m spread over [0, T-1], with outputs y_ij = f(x_i, t_j, c_i)
(eval mode: no dropout), the relative spread over t is

    s = sum_ij ||y_ij - mean_j y_ij||^2 / sum_ij ||y_ij||^2 ,  reported as sqrt(s).

A network that ignores t (a dead or zeroed embedding) has s = 0 exactly: every t gives the same
output. A trained eps-predictor changes a lot between t = 0 (eps from a nearly clean image) and
t = T-1 (the input itself), so its spread is of order 1. The same number for the output of each
layer that receives the embedding (forward hooks) says where the embedding pathway contributes.
An untrained network whose output layer is zero-initialised has ||y|| = 0: reported as
``silent``, neither dead nor healthy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

#: relative spread below which the output is said not to depend on t
DEAD_THRESHOLD = 1e-3


def embedding_layers(backbone: nn.Module) -> dict[str, nn.Module]:
    """The submodules that take the embedding: those owning an ``emb_proj`` (U-Net ResBlocks),
    an ``adaLN`` (DiT blocks) or called on ``emb`` in an MLP block (``emb_proj`` there too)."""
    return {name: m for name, m in backbone.named_modules()
            if name and (hasattr(m, "emb_proj") or hasattr(m, "adaLN"))}


def relative_spread(y: Tensor) -> float:
    """sqrt( sum ||y_ij - mean_j y_ij||^2 / sum ||y_ij||^2 ) for y shaped (m, n, ...), j over
    the first axis (timesteps); nan when every y is zero."""
    y = y.double().flatten(2)  # (m, n, D)
    total = float((y * y).sum())
    if total == 0.0:
        return float("nan")
    centred = y - y.mean(dim=0, keepdim=True)
    return (float((centred * centred).sum()) / total) ** 0.5


@torch.no_grad()
def timestep_sensitivity(backbone: nn.Module, x: Tensor, timesteps: Tensor, cond: Tensor | None = None,
                         layers: Mapping[str, nn.Module] | None = None,
                         threshold: float = DEAD_THRESHOLD) -> dict:
    """{'output': spread of the output over ``timesteps``, 'layers': {name: spread}, 'status'}.

    ``x`` (n, ...) fixed inputs, ``timesteps`` (m,) values the backbone receives as t (floats in
    [0, T-1]), ``cond`` (n,) or None. ``status``: 'dead' (output spread < ``threshold``),
    'healthy', or 'silent' (zero output: an untrained zero-initialised head). The backbone's
    train/eval mode is restored afterwards.
    """
    layers = embedding_layers(backbone) if layers is None else dict(layers)
    seen: dict[str, list[Tensor]] = {name: [] for name in layers}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: seen[name].append(out.detach()))
             for name, m in layers.items()]
    was_training = backbone.training
    backbone.eval()
    try:
        outs = []
        for t in timesteps.tolist():
            tt = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
            outs.append(backbone(x, tt, cond))
    finally:
        for h in hooks:
            h.remove()
        backbone.train(was_training)
    spread = relative_spread(torch.stack(outs))
    per_layer = {name: relative_spread(torch.stack(v)) for name, v in seen.items()
                 if len(v) == len(outs)}
    status = "silent" if math.isnan(spread) else ("dead" if spread < threshold else "healthy")
    return {"output": spread, "layers": per_layer, "status": status, "threshold": threshold,
            "num_inputs": int(x.shape[0]), "num_timesteps": len(outs)}


def timestep_grid(num_steps: int, count: int = 8) -> Tensor:
    """``count`` timesteps evenly spread over [0, T-1] (float)."""
    return torch.linspace(0, num_steps - 1, count)


def probe_inputs(schedule, x0: Tensor, seed: int) -> Tensor:
    """The fixed x of the measurement: x0 noised to t = T/2, x = sqrt(ab) x0 + sqrt(1 - ab) z,
    with z fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)
    t = torch.full((x0.shape[0],), schedule.num_steps // 2, dtype=torch.long, device=x0.device)
    return schedule.q_sample(x0, t, noise)


def health_on_data(backbone: nn.Module, schedule, x0: Tensor, cond: Tensor | None = None,
                   num_timesteps: int = 8, threshold: float = DEAD_THRESHOLD, seed: int = 0) -> dict:
    """:func:`timestep_sensitivity` at the fixed inputs :func:`probe_inputs` makes from real
    images ``x0``, over ``num_timesteps`` timesteps spread over the schedule."""
    return timestep_sensitivity(backbone, probe_inputs(schedule, x0, seed),
                                timestep_grid(schedule.num_steps, num_timesteps), cond,
                                threshold=threshold)
