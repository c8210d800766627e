"""Predictor-corrector sampling against the exact Gaussian denoiser: the Langevin corrector's
stationary law, the corrector's gain over the predictor alone, identities and NFE."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from diffusion_lab.discretization import UniformSpacing
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import count_nfe, ddpm, predictor_corrector, solver_nfe
from diffusion_lab.samplers.langevin import langevin_correct
from diffusion_lab.schedules import cosine_schedule, linear_schedule


def _gaussian_noise(seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda like: torch.randn(like.shape, generator=g, dtype=like.dtype)


def _isotropic(dim: int) -> GaussianOracle:
    return GaussianOracle(torch.full((dim,), 0.7, dtype=torch.float64),
                          torch.full((dim,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_fixed_step_langevin_converges_to_its_closed_form_law(sigma):
    # Isotropic data N(m, s^2 I): p_sigma = N(m, v I), v = s^2 + sigma^2. Unadjusted Langevin
    # with the exact score and fixed step eps = 2 (r sigma)^2 has the stationary law
    # N(m, v / (1 - eps / (2 v)) I), which tends to p_sigma as r -> 0.
    dim, n, snr = 16, 4000, 0.3
    v = 0.25 + sigma**2
    eps = 2 * (snr * sigma) ** 2
    g = torch.Generator().manual_seed(0)
    start = 0.7 - 1.5 * math.sqrt(v) + 2.0 * math.sqrt(v) * torch.randn(
        n, dim, generator=g, dtype=torch.float64)
    out = langevin_correct(_isotropic(dim), start, sigma, None, _gaussian_noise(1), steps=300,
                           snr=snr, step_rule="sigma")
    assert abs(out.mean().item() - 0.7) < 4 * math.sqrt(v / (n * dim))
    expected = v / (1 - eps / (2 * v))
    assert abs(out.var().item() / expected - 1) < 0.015
    assert abs(out.var().item() / v - 1) > 0.02 or sigma < 1  # the bias is seen, not hidden
    # it moved: the start was off in mean and spread
    assert abs(start.mean().item() - 0.7) > math.sqrt(v) and start.var().item() > 3.5 * v


def test_song_step_rule_widens_the_law_by_about_four_over_d():
    # eps = 2 (r |z| / |score|)^2 depends on the state: the chain keeps p/eps, not p. Measured
    # variance / v: ~1 + 4/d whatever r (documented in samplers/langevin.py).
    sigma, v, n = 0.3, 0.25 + 0.09, 2000
    ratios = {}
    for dim in (8, 64):
        x = 0.7 + math.sqrt(v) * torch.randn(n, dim, generator=torch.Generator().manual_seed(0),
                                             dtype=torch.float64)
        out = langevin_correct(_isotropic(dim), x, sigma, None, _gaussian_noise(1), steps=400,
                               snr=0.16, step_rule="norm")
        ratios[dim] = out.var().item() / v
    assert 1 + 2 / 8 < ratios[8] < 1 + 6 / 8
    assert 1 + 2 / 64 < ratios[64] < 1 + 6 / 64


@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
@pytest.mark.parametrize("steps", [10, 50])
def test_the_corrector_brings_ancestral_sampling_closer_to_the_data(make, steps):
    oracle = GaussianOracle.random(dim=8, seed=0, std_min=0.1, std_max=1.0)
    sig = UniformSpacing()(make(), steps)
    x = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64) * math.sqrt(1 + sig[0].item() ** 2)
    w2 = {}
    for m in (0, 1, 2):  # the default fixed-step rule, snr 0.3
        out = predictor_corrector(oracle, x.clone(), sig, noise=_gaussian_noise(2),
                                  corrector_steps=m)
        w2[m] = oracle.w2(out.mean(0), out.std(0))
    assert w2[2] < w2[1] < 0.93 * w2[0], w2


def test_no_corrector_is_ddpm_and_the_last_step_adds_no_noise():
    oracle = GaussianOracle.random(dim=4, seed=1)
    sig = UniformSpacing()(linear_schedule(), 12)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = predictor_corrector(oracle, x, sig, noise=PerSampleNoise(5, range(6)), corrector_steps=0)
    b = ddpm(oracle, x, sig, noise=PerSampleNoise(5, range(6)))
    assert torch.equal(a, b)
    one = torch.tensor([sig[3].item(), 0.0], dtype=torch.float64)
    c = predictor_corrector(oracle, x, one, noise=PerSampleNoise(0, range(6)), corrector_steps=3)
    assert torch.equal(c, oracle(x, one[:1].expand(6)))


@pytest.mark.parametrize("corrector_steps", [0, 1, 3])
def test_nfe_formula_matches_count(corrector_steps):
    oracle = GaussianOracle.random(dim=4, seed=1)
    solver = functools.partial(predictor_corrector, corrector_steps=corrector_steps)
    for n in (1, 2, 7):
        sig = UniformSpacing()(linear_schedule(), n)
        counted = count_nfe(oracle)
        solver(counted, torch.randn(2, 4, dtype=torch.float64), sig,
               noise=PerSampleNoise(0, range(2)))
        assert counted.nfe == solver_nfe(solver, n) == SamplerSpec(solver, UniformSpacing(), n).nfe
        assert counted.nfe == n + corrector_steps * (n - 1)


@pytest.mark.parametrize("kwargs,message", [({"corrector_steps": -1}, "corrector_steps"),
                                            ({"corrector_steps": 1.5}, "corrector_steps"),
                                            ({"snr": 0.0}, "snr must be > 0"),
                                            ({"step_rule": "x"}, "step_rule must be one of")])
def test_bad_options_are_refused(kwargs, message):
    oracle = GaussianOracle.random(dim=2, seed=0)
    sig = UniformSpacing()(linear_schedule(), 3)
    with pytest.raises(ValueError, match=message):
        predictor_corrector(oracle, torch.zeros(1, 2), sig, noise=PerSampleNoise(0, [0]), **kwargs)
    with pytest.raises(ValueError, match="stochastic"):
        predictor_corrector(oracle, torch.zeros(1, 2), sig)
