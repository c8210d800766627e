"""The noise schedule a model was trained with, recorded by value, and agreement checks.

A config name ("cosine") does not fix the numbers: code and defaults change. A checkpoint stores

    {'num_steps': T, 'alpha_bars': [ab_0, ..., ab_{T-1}] (float64 values), 'sha256': digest}

and sampling compares the schedule it is about to use with it: a sampler run on a different
ab_t feeds the network noise levels it never saw at the timesteps it is told.
"""

from __future__ import annotations

import hashlib

import torch

#: relative tolerance on ab_t (float64 round-off across machines is far below it)
RTOL = 1e-6


def schedule_record(schedule) -> dict:
    """The stored record of a NoiseSchedule (plain floats: readable without torch)."""
    ab = schedule.alpha_bars.double().cpu().contiguous()
    return {"num_steps": int(ab.numel()), "alpha_bars": ab.tolist(),
            "sha256": hashlib.sha256(ab.numpy().tobytes()).hexdigest()[:16]}


def _at(values, i: int) -> str:
    return f"ab[{i}]={values[i]:.6g}"


def schedule_mismatch(record: dict, schedule, rtol: float = RTOL) -> str | None:
    """None when ``schedule`` has the recorded values; otherwise one line saying how it differs
    (step count, or the first timestep whose alpha_bar differs beyond ``rtol``)."""
    mine = schedule.alpha_bars.double().cpu()
    trained = torch.as_tensor(record["alpha_bars"], dtype=torch.float64)
    if trained.numel() != mine.numel():
        return f"trained with T={trained.numel()} timesteps, sampling with T={mine.numel()}"
    bad = ~torch.isclose(mine, trained, rtol=rtol, atol=0.0)
    if not bool(bad.any()):
        return None
    i = int(bad.nonzero()[0])
    return (f"trained with {_at(trained.tolist(), i)}, sampling with {_at(mine.tolist(), i)} "
            f"({int(bad.sum())} of {mine.numel()} timesteps differ)")
