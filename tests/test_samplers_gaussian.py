"""Samplers against the exact Gaussian oracle: output law, convergence order, identities."""

import functools
import itertools
import math

import pytest
import torch

from diffusion_lab.discretization import KarrasSpacing, UniformSpacing
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.parametrization import EpsPrediction, VPrediction, X0Prediction
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import (
    SOLVERS,
    count_nfe,
    ddim,
    ddpm,
    ddpm_large_variance,
    dpmpp_2m,
    euler,
    heun,
    solver_nfe,
)
from diffusion_lab.schedules import cosine_schedule, linear_schedule


@pytest.fixture(scope="module")
def oracle():
    return GaussianOracle.random(dim=8, seed=0, std_min=0.1, std_max=1.0)


@pytest.fixture(scope="module")
def schedule():
    return linear_schedule()


def _x_T(sigmas, n=64, dim=8, seed=0):
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z * math.sqrt(1 + sigmas[0].item() ** 2)


@pytest.mark.parametrize("name", SOLVERS)
def test_output_law_approaches_data(name, oracle, schedule):
    solver = SOLVERS[name]
    w2 = [
        oracle.w2(*affine_output_law(solver, oracle, UniformSpacing()(schedule, n), oracle.dim))
        for n in (5, 20, 100)
    ]
    assert w2[0] > w2[1] > w2[2]
    assert w2[2] < 0.1


def test_affine_law_matches_monte_carlo(oracle, schedule):
    """The exact law extraction agrees with sampling through SamplerSpec (per-sample noise)."""
    spec = SamplerSpec(ddpm, UniformSpacing(), 20)
    samples = spec.sample(oracle, schedule, (3000, oracle.dim), seed=1).double()
    mean, std = affine_output_law(ddpm, oracle, spec.sigmas(schedule), oracle.dim)
    n = samples.shape[0]
    assert bool(((samples.mean(0) - mean).abs() < 5 * std / math.sqrt(n)).all())
    assert bool(((samples.std(0) - std).abs() < 5 * std / math.sqrt(2 * n)).all())


def test_ddpm_1000_steps_reproduces_data_monte_carlo():
    """Full-length ancestral sampling of an eps-model: data mean/var within Monte-Carlo error."""
    sch = linear_schedule()
    oracle = GaussianOracle(torch.tensor([0.5, -1.0]), torch.tensor([0.5, 1.0]))
    den = VPDenoiser(oracle.backbone(sch, EpsPrediction()), sch, EpsPrediction())
    g = torch.Generator().manual_seed(0)
    n = 20_000
    sigmas = UniformSpacing()(sch, 1000)
    x = torch.randn(n, 2, generator=g) * math.sqrt(1 + sigmas[0].item() ** 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors, 1000 steps: intra-op threads only add contention
    try:
        out = ddpm(den, x, sigmas, noise=lambda like: torch.randn(like.shape, generator=g)).double()
    finally:
        torch.set_num_threads(threads)
    assert bool(((out.mean(0) - oracle.mean).abs() < 4 * oracle.std / math.sqrt(n)).all())
    assert bool(((out.var(0) / oracle.std**2 - 1).abs() < 4 * math.sqrt(2 / n)).all())


@pytest.mark.parametrize("spacing", [UniformSpacing(), KarrasSpacing()], ids=["uniform", "karras"])
def test_dpmpp_2m_beats_ddim_at_20_steps(oracle, schedule, spacing):
    sig = spacing(schedule, 20)
    assert oracle.w2(*affine_output_law(dpmpp_2m, oracle, sig, 8)) < oracle.w2(
        *affine_output_law(ddim, oracle, sig, 8)
    )


@pytest.mark.parametrize("steps", [25, 50])
def test_heun_beats_euler_at_equal_nfe(oracle, schedule, steps):
    sp = KarrasSpacing()
    h = oracle.w2(*affine_output_law(heun, oracle, sp(schedule, steps), 8))
    e = oracle.w2(*affine_output_law(euler, oracle, sp(schedule, solver_nfe(heun, steps)), 8))
    assert h < e


def test_ddim_20_steps_close_to_1000_steps(oracle, schedule):
    x = _x_T(UniformSpacing()(schedule, 1000))
    ref = euler(oracle, x, UniformSpacing()(schedule, 1000))
    spread = (ref - oracle.mean).norm(dim=1).mean()
    errs = [
        (euler(oracle, x, UniformSpacing()(schedule, n)) - ref).norm(dim=1).mean()
        for n in (10, 20, 50)
    ]
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] < 0.2 * spread


ORDERS = [("euler", 1), ("heun", 2), ("dpmpp_2m", 2), ("dpmpp_2s", 2), ("dpmpp_2s_heun", 2),
          ("dpmpp_3m", 3), ("unipc_bh1_2", 3),
          ("unipc_bh2_2", 3), ("unipc_bh2_3", 4), ("unip_3", 3)]


@pytest.mark.parametrize("name,order", ORDERS)
@pytest.mark.parametrize("spacing", [KarrasSpacing()], ids=["karras"])
def test_convergence_order(name, order, spacing, oracle, schedule):
    """Error vs the exact PF-ODE flow (sigma_max -> sigma_min, then the shared final denoise step)
    shrinks by 2**order per doubling of steps (UniPC-p: order p + 1 with its corrector)."""
    errs = []
    for n in (64, 128, 256):
        sig = spacing(schedule, n)
        x = _x_T(sig, n=4)
        out = SOLVERS[name](oracle, x, sig)
        ref = oracle.denoise(oracle.flow(x, sig[0].item(), sig[-2].item()), sig[-2].item())
        errs.append((out - ref).abs().max().item())
    for a, b in itertools.pairwise(errs):
        assert 2**order * 0.85 < a / b < 2**order * 1.2


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize(
    "dtype,make,tol",
    [(torch.float64, cosine_schedule, 1e-8), (torch.float32, linear_schedule, 1e-5)],
    ids=["float64-cosine", "float32-linear"],
)
def test_eps_x0_v_models_give_the_same_samples(name, dtype, make, tol, oracle):
    """Same samples from all three parametrizations. (float32 is checked on the linear schedule:
    at the cosine sigma_max ~ 2e4 an eps-model's x0 = (x - sigma eps) loses ~1e-4 to
    cancellation.)"""
    sch = make()
    sig = UniformSpacing()(sch, 15)
    x = _x_T(sig, n=16).to(dtype)
    ref = SOLVERS[name](oracle, x.double(), sig, noise=PerSampleNoise(3, range(16)))
    for pred in (EpsPrediction(), X0Prediction(), VPrediction()):
        den = VPDenoiser(oracle.backbone(sch, pred), sch, pred)
        out = SOLVERS[name](den, x, sig, noise=PerSampleNoise(3, range(16)))
        assert out.dtype == dtype
        assert torch.allclose(out.double(), ref, atol=tol, rtol=0)


@pytest.mark.parametrize("pred", [VPrediction(), X0Prediction()], ids=lambda p: p.name)
def test_zero_terminal_snr_sampling(pred, oracle):
    sch = linear_schedule(zero_terminal_snr=True)
    den = VPDenoiser(oracle.backbone(sch, pred), sch, pred)
    w2 = [oracle.w2(*affine_output_law(euler, den, UniformSpacing()(sch, n), 8)) for n in (5, 50)]
    assert math.isfinite(w2[0]) and w2[1] < w2[0] and w2[1] < 0.1


def test_ddim_eta0_is_euler_and_eta1_is_ddpm(oracle, schedule):
    sig = UniformSpacing()(schedule, 12)
    x = _x_T(sig).float()
    assert torch.equal(ddim(oracle, x, sig), euler(oracle, x, sig))
    a = ddim(oracle, x.double(), sig, eta=1.0, noise=PerSampleNoise(5, range(64)))
    b = ddpm(oracle, x.double(), sig, noise=PerSampleNoise(5, range(64)))
    assert torch.allclose(a, b, atol=1e-10, rtol=0)
    c = ddim(oracle, x.double(), sig, eta=0.5, noise=PerSampleNoise(5, range(64)))
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_one_ddpm_step_is_the_posterior(oracle, schedule, large):
    """From x_t at sigma_t to sigma_{t-1}: the mean of schedule.posterior_mean_variance, and its
    variance beta~_t ("small") or beta_t ("large"), all in VP space."""
    t = 400
    sig = torch.cat([schedule.sigmas[[t, t - 1]], torch.zeros(1, dtype=torch.float64)])
    x = _x_T(sig, n=6)
    seen = {}

    def grab(info):
        if info.i == 1:
            seen["x"] = info.x

    solver = ddpm_large_variance if large else ddpm
    ab_prev = schedule.alpha_bars[t - 1].item()
    x0 = oracle.denoise(x, sig[:1].expand(6))
    x_vp = x * math.sqrt(schedule.alpha_bars[t].item())
    mean, var = schedule.posterior_mean_variance(x0, x_vp, torch.full((6,), t))
    if large:
        var = torch.full_like(var, schedule.betas[t].item())
    solver(oracle, x, sig, callback=grab, noise=torch.zeros_like)
    assert torch.allclose(seen["x"] * math.sqrt(ab_prev), mean, rtol=1e-10, atol=1e-12)
    solver(oracle, x, sig, callback=grab, noise=torch.ones_like)
    step_std = seen["x"] * math.sqrt(ab_prev) - mean
    assert torch.allclose(step_std**2, var.expand_as(step_std), rtol=1e-9)


@pytest.mark.parametrize("name", SOLVERS)
def test_last_step_adds_no_noise(name, oracle, schedule):
    sig = torch.tensor([schedule.sigmas[50].item(), 0.0], dtype=torch.float64)
    x = _x_T(sig, n=4)
    a = SOLVERS[name](oracle, x, sig, noise=PerSampleNoise(0, range(4)))
    b = SOLVERS[name](oracle, x, sig, noise=PerSampleNoise(1, range(4)))
    assert torch.equal(a, b) and torch.equal(a, oracle(x, sig[:1].expand(4)))
    draws = []
    sig = UniformSpacing()(schedule, 6)
    SOLVERS[name](
        oracle, _x_T(sig, n=4), sig, noise=lambda like: draws.append(1) or torch.zeros_like(like)
    )
    assert len(draws) in (0, 5)  # at most one draw per step, none on the final step


@pytest.mark.parametrize("name", SOLVERS)
def test_nfe_formula_matches_count(name, oracle, schedule):
    for n in (1, 2, 7):
        counted = count_nfe(oracle)
        sig = UniformSpacing()(schedule, n)
        SOLVERS[name](counted, _x_T(sig, n=2), sig, noise=PerSampleNoise(0, range(2)))
        assert (
            counted.nfe
            == solver_nfe(SOLVERS[name], n)
            == SamplerSpec(SOLVERS[name], UniformSpacing(), n).nfe
        )


@pytest.mark.parametrize("n", [6, 7])
def test_dpmpp_2s_reports_every_evaluation(n, oracle, schedule):
    """The singlestep solver's callback fires at each evaluation (the pair's intermediate one
    too), in order, at the level the model was evaluated at, with that evaluation's D."""
    sig = UniformSpacing()(schedule, n)
    counted, seen = count_nfe(oracle), []
    SOLVERS["dpmpp_2s"](counted, _x_T(sig, n=2), sig, callback=seen.append)
    assert [s.i for s in seen] == list(range(n)) and counted.nfe == n
    assert [s.sigma for s in seen] == sig[:-1].tolist()
    for s in seen:
        expected = oracle(s.x, torch.full((2,), s.sigma, dtype=torch.float64), None)
        assert torch.allclose(s.denoised, expected)


def test_input_validation(oracle, schedule):
    sig = UniformSpacing()(schedule, 4)
    x = _x_T(sig, n=2)
    for bad in (torch.tensor([3.0, 1.0]), torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.0])):
        with pytest.raises(ValueError):
            euler(oracle, x, bad)
    for stochastic in (ddpm, ddpm_large_variance, functools.partial(ddim, eta=0.3)):
        with pytest.raises(ValueError):
            stochastic(oracle, x, sig)
    with pytest.raises(ValueError):
        ddim(oracle, x, sig, eta=1.5, noise=PerSampleNoise(0, range(2)))
    with pytest.raises(ValueError):
        SamplerSpec(euler, UniformSpacing(), 0)
    with pytest.raises(ValueError):
        SamplerSpec(euler, UniformSpacing(), 1001).sample(oracle, schedule, (2, 8))
