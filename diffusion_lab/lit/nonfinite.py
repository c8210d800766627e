"""Non-finite losses and gradients: skip the step, count it, stop when it keeps happening.

A step whose loss or gradients contain NaN/inf is skipped: its gradients are dropped
(``grad = None``, which every torch optimizer treats as "leave this parameter alone": no
update, no moment or weight-decay change) and the EMA is not updated. The global step and the
learning-rate schedule still advance. Under DDP the decision is the same on every rank (the
gradients are already averaged; the loss check is all-reduced). After ``max_consecutive``
skipped steps in a row, training stops with :class:`NonFiniteError`.

With ``precision=16-mixed`` the grad scaler skips overflowing steps as well (its usual
calibration in the first steps counts here too, and resets the run of consecutive skips as
soon as a step succeeds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


class NonFiniteError(RuntimeError):
    """Training produced non-finite values it cannot recover from; the message is one line."""


def first_nonfinite(tensors: Mapping[str, object]) -> tuple[str, int] | None:
    """The first floating tensor with NaN/inf values, and how many it has; None if all finite."""
    for key, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            bad = t.numel() - int(torch.isfinite(t).sum())
            if bad:
                return key, bad
    return None


def grads_finite(params: Iterable[torch.nn.Parameter], also: torch.Tensor | bool = True) -> bool:
    """All gradients finite (their total norm is) and ``also`` true: one host sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return bool(also)
    finite = torch.isfinite(torch.nn.utils.get_total_norm(grads))
    if isinstance(also, torch.Tensor):
        finite = finite & also.to(finite.device)
    elif not also:
        return False
    return bool(finite)


class NonFiniteGuard:
    """Counts skipped steps; ``check`` says whether this step may update the weights."""

    def __init__(self, max_consecutive: int = 20) -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive_nonfinite must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.skipped = 0
        self.consecutive = 0

    def check(self, finite: bool, step: int) -> bool:
        """Record one step; raise NonFiniteError after too many non-finite ones in a row."""
        if finite:
            self.consecutive = 0
            return True
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteError(
                f"training stopped at step {step}: {self.consecutive} consecutive steps had a "
                f"non-finite loss or gradients ({self.skipped} skipped in all); the last "
                "checkpoint holds the last good weights. Check the data for NaN/inf, lower "
                "module.optimizer.lr, or use trainer.precision=32-true"
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self.consecutive = int(state.get("consecutive", 0))
