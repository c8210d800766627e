"""Sampling grids: shape, ordering, closed forms, and that samplers visit exactly the grid."""

import functools
import math

import numpy as np
import pytest
import torch

from diffusion_lab.discretization import (
    KarrasSpacing,
    LeadingSpacing,
    LogSNRSpacing,
    QuadraticSpacing,
    UniformSpacing,
    usable_sigma_max,
)
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.sampler_spec import SamplerSpec, TrajectoryRecorder
from diffusion_lab.samplers import ddim, ddpm, ddpm_large_variance, dpmpp_2m, euler, heun
from diffusion_lab.schedules import cosine_schedule, linear_schedule

INTEGER = [UniformSpacing(), LeadingSpacing(), LeadingSpacing(offset=1), QuadraticSpacing()]
CONTINUOUS = [
    LogSNRSpacing(),
    KarrasSpacing(),
    KarrasSpacing(rho=3.0, sigma_min=0.02, sigma_max=80.0),
]
SOLVERS = [euler, heun, dpmpp_2m, functools.partial(ddim, eta=0.5), ddpm, ddpm_large_variance]


@pytest.mark.parametrize("spacing", INTEGER + CONTINUOUS, ids=repr)
@pytest.mark.parametrize("n", [1, 2, 7, 10, 50, 333])
def test_grid_shape_order_and_zero(spacing, n):
    sch = linear_schedule()
    sig = spacing(sch, n)
    assert sig.dtype == torch.float64 and sig.shape == (n + 1,)
    assert sig[-1].item() == 0.0 and bool((sig.diff() < 0).all())


@pytest.mark.parametrize("spacing", INTEGER, ids=repr)
@pytest.mark.parametrize(
    "T,n", [(1000, 7), (1000, 10), (1000, 999), (1000, 1000), (37, 5), (37, 37)]
)
def test_integer_timesteps(spacing, T, n):
    if getattr(spacing, "offset", 0) and (n - 1) * (T // n) + spacing.offset > T - 1:
        with pytest.raises(ValueError):
            spacing.timesteps(T, n)
        return
    ts = spacing.timesteps(T, n)
    assert ts.dtype == torch.int64 and ts.shape == (n,)
    assert bool((ts.diff() < 0).all()) and ts.min().item() >= 0 and ts.max().item() <= T - 1
    sch = linear_schedule(T) if T >= 20 else None
    if sch is not None:
        assert torch.equal(spacing(sch, n)[:-1], sch.sigmas[ts])


def test_integer_spacing_closed_forms():
    T, n = 1000, 7
    trailing = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    assert UniformSpacing().timesteps(T, n).tolist() == trailing.tolist()
    assert UniformSpacing().timesteps(T, n)[0].item() == T - 1
    assert LeadingSpacing().timesteps(T, n).tolist() == [142 * k for k in reversed(range(7))]
    assert (
        LeadingSpacing(offset=1).timesteps(T, n).tolist()
        == (np.arange(n)[::-1] * (T // n) + 1).tolist()
    )
    assert UniformSpacing().timesteps(T, T).tolist() == list(range(T - 1, -1, -1))
    n = 20  # DDIM quadratic, no collisions below sqrt(0.8 T) + 1 steps
    quad = [int(s) for s in np.linspace(0, np.sqrt(T * 0.8), n) ** 2][::-1]
    assert QuadraticSpacing().timesteps(T, n).tolist() == quad
    bumped = QuadraticSpacing().timesteps(T, 100).flip(0).tolist()
    assert bumped[:3] == [0, 1, 2] and len(set(bumped)) == 100


def test_continuous_closed_forms():
    sch = cosine_schedule()
    lo, hi = sch.sigma_min, sch.sigma_max
    n, rho = 9, 7.0
    sig = KarrasSpacing(rho, skip_tail=False)(sch, n)[:-1]
    i = torch.arange(n, dtype=torch.float64)
    ref = (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    assert torch.allclose(sig, ref, rtol=1e-12)
    assert sig[0].item() == hi and sig[-1].item() == lo
    log_snr = -2 * torch.log(LogSNRSpacing(skip_tail=False)(sch, n)[:-1])
    assert torch.allclose(
        log_snr.diff(),
        torch.full((n - 1,), (2 * math.log(hi) - 2 * math.log(lo)) / (n - 1), dtype=torch.float64),
        rtol=1e-10,
    )
    custom = KarrasSpacing(sigma_min=0.002, sigma_max=80.0)(sch, 5)
    assert custom[0].item() == 80.0 and custom[-2].item() == 0.002


@pytest.mark.parametrize("spacing", [LogSNRSpacing, KarrasSpacing], ids=["logsnr", "karras"])
def test_default_grid_skips_the_cosine_tail(spacing):
    """cosine: sigma jumps 642 -> 20,291 on the last training step. The default grid keeps one
    level up there (where the prior lives) and spreads the others over [sigma_min, 642] by the
    spacing's own rule; the old grid had 5 (log-SNR) / 9 (Karras) of 20 levels above 642."""
    sch = cosine_schedule()
    usable = usable_sigma_max(sch)
    assert usable == sch.sigmas[-2].item()
    old, new = spacing(skip_tail=False)(sch, 20), spacing()(sch, 20)
    assert int((old > usable * 1.001).sum()) == {LogSNRSpacing: 5, KarrasSpacing: 9}[spacing]
    assert int((new > usable * 1.001).sum()) == 1 and new[0] == sch.sigma_max
    assert torch.allclose(new[1:-1], spacing(sigma_max=usable)(sch, 19)[:-1], rtol=1e-12)
    # no jump on the linear schedule: the grid is unchanged
    lin = linear_schedule()
    assert usable_sigma_max(lin) == lin.sigma_max
    assert torch.equal(spacing()(lin, 20), spacing(skip_tail=False)(lin, 20))


def test_spacing_validation():
    sch = linear_schedule()
    for spacing in INTEGER + CONTINUOUS:
        for bad in (0, -1, 2.5):
            with pytest.raises(ValueError):
                spacing(sch, bad)
    for spacing in INTEGER:
        with pytest.raises(ValueError):
            spacing(sch, 1001)
    with pytest.raises(ValueError):
        LeadingSpacing(offset=5).timesteps(1000, 1000)
    with pytest.raises(ValueError):
        KarrasSpacing(rho=0.0)
    with pytest.raises(ValueError):
        LogSNRSpacing(sigma_min=1.0, sigma_max=0.5)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: getattr(s, "__name__", "ddim_eta"))
@pytest.mark.parametrize(
    "spacing", [UniformSpacing(), LeadingSpacing(), QuadraticSpacing(), KarrasSpacing()], ids=repr
)
def test_sampler_visits_exactly_the_grid(solver, spacing):
    """Record (sigma, sigma_next) and the denoiser's sigmas: no "previous timestep" recomputed."""
    sch = linear_schedule()
    oracle = GaussianOracle.random(dim=4, seed=0)
    asked = []

    def denoiser(x, sigma, cond):
        asked.append(sigma[0].item())
        return oracle(x, sigma, cond)

    infos = []
    spec = SamplerSpec(solver, spacing, 7)
    spec.sample(denoiser, sch, (3, 4), callback=infos.append)
    sig = spec.sigmas(sch).tolist()
    assert [info.i for info in infos] == list(range(7))
    assert [info.sigma for info in infos] == sig[:-1]
    assert [info.sigma_next for info in infos] == sig[1:]
    assert set(asked) <= set(sig[:-1]) and asked[0] == sig[0]


def test_trajectory_recorder_and_initial_scale():
    sch = linear_schedule()
    oracle = GaussianOracle.random(dim=4, seed=0)
    idx = TrajectoryRecorder.strip_indices(20)
    assert idx == [0, 5, 10, 15]
    rec = TrajectoryRecorder(idx)
    spec = SamplerSpec(ddpm, UniformSpacing(), 20)
    out = spec.sample(oracle, sch, (6, 4), seed=4, callback=rec)
    sig = spec.sigmas(sch)
    assert sorted(rec.x) == idx and sorted(rec.denoised) == idx
    assert rec.sigmas[5] == sig[5].item()
    z = PerSampleNoise(4, range(6)).sample((6, 4))
    assert torch.allclose(rec.x[0], z * math.sqrt(1 + sig[0].item() ** 2))
    assert not torch.equal(rec.x[15], out)
