"""DPM-Solver++(3M), UniPC and DPM-Solver++(2M) SDE: identities between them, the lower-order
final option, weak convergence of the SDE solver, per-sample seeds."""

import functools
import math

import pytest
import torch

from diffusion_lab.discretization import KarrasSpacing, LogSNRSpacing
from diffusion_lab.oracle import GaussianOracle, affine_output_law
from diffusion_lab.sampler_spec import SamplerSpec, TrajectoryRecorder
from diffusion_lab.samplers import dpmpp_2m, dpmpp_2m_sde, dpmpp_3m, unipc
from diffusion_lab.samplers.multistep import lambda_derivatives, phi_functions
from diffusion_lab.schedules import cosine_schedule, linear_schedule


@pytest.fixture(scope="module")
def oracle():
    return GaussianOracle.random(dim=8, seed=0, std_min=0.1, std_max=1.0)


def _x_T(sigmas, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g, dtype=torch.float64) * math.sqrt(1 + sigmas[0].item() ** 2)


def test_phi_functions_are_the_exponential_integrals():
    """phi_{k+1}(h) = int_0^h e^{-(h-v)} v^k / k! dv, by quadrature."""
    h = 0.7
    v = torch.linspace(0, h, 20001, dtype=torch.float64)
    for k, phi in enumerate(phi_functions(h)):
        integrand = torch.exp(-(h - v)) * v**k / math.factorial(k)
        assert math.isclose(torch.trapezoid(integrand, v).item(), phi, rel_tol=1e-7)


def test_lambda_derivatives_are_exact_on_a_quadratic():
    lams = [0.9, 0.5, -0.2]
    ds = [torch.tensor([3 - 2 * lam + 1.5 * lam**2]) for lam in lams]
    d1, d2 = lambda_derivatives(lams, ds)
    assert torch.allclose(d1, torch.tensor([-2 + 3 * 0.9]), atol=1e-12)
    assert torch.allclose(d2, torch.tensor([3.0]), atol=1e-12)


@pytest.mark.parametrize("spacing", [LogSNRSpacing(), KarrasSpacing()], ids=["logsnr", "karras"])
def test_unipc_predictor_alone_is_dpm_solver(oracle, spacing):
    """UniP-2 without corrector is DPM-Solver++(2M) (rho = 1/2); UniP-3 is a third-order method
    like 3M (equal up to O(h^3) terms), and the corrector changes the result."""
    sig = spacing(linear_schedule(), 12)
    x = _x_T(sig)
    assert torch.allclose(unipc(oracle, x, sig, corrector=False), dpmpp_2m(oracle, x, sig), atol=1e-12)
    p3 = unipc(oracle, x, sig, order=3, corrector=False)
    assert torch.allclose(p3, dpmpp_3m(oracle, x, sig), atol=1e-4)
    assert not torch.allclose(p3, dpmpp_2m(oracle, x, sig), atol=1e-4)
    assert not torch.allclose(unipc(oracle, x, sig, order=3), p3, atol=1e-6)


def test_lower_order_final_changes_only_the_last_steps(oracle):
    sig = KarrasSpacing()(cosine_schedule(), 10)
    x = _x_T(sig)
    for solver in (dpmpp_3m, functools.partial(unipc, order=3)):
        plain, low = TrajectoryRecorder(range(10)), TrajectoryRecorder(range(10))
        a = solver(oracle, x, sig, callback=plain)
        b = solver(oracle, x, sig, callback=low, lower_order_final=True)
        for i in range(9):  # steps 0..7 use order <= 3 <= 10 - i either way; step 8 caps at 2
            same = torch.equal(plain.x[i], low.x[i])
            assert same == (i <= 8), i
        assert not torch.equal(a, b)


def test_2m_sde_with_eta_zero_is_the_ode_solver(oracle):
    sig = LogSNRSpacing()(linear_schedule(), 9)
    x = _x_T(sig)
    assert torch.allclose(dpmpp_2m_sde(oracle, x, sig, eta=0.0), dpmpp_2m(oracle, x, sig), atol=1e-12)


def test_2m_sde_output_law_converges(oracle):
    """Exact W2 of the SDE solver's output law to the data law: roughly second order in the
    step until the floor of the VP prior (mean 0 at sigma_max ~ 157)."""
    sch = linear_schedule()
    w2 = [oracle.w2(*affine_output_law(dpmpp_2m_sde, oracle, LogSNRSpacing()(sch, n), 8))
          for n in (40, 80, 160)]
    assert w2[0] / w2[1] > 3 and w2[1] / w2[2] > 3


def test_2m_sde_samples_depend_only_on_seed_and_index(oracle):
    spec = SamplerSpec(dpmpp_2m_sde, LogSNRSpacing(), 6)
    sch = linear_schedule()
    full = spec.sample(oracle, sch, (6, 8), seed=3)
    part = spec.sample(oracle, sch, (2, 8), seed=3, indices=[4, 1])
    assert torch.allclose(part, full[[4, 1]], atol=1e-6)
    assert not torch.allclose(spec.sample(oracle, sch, (6, 8), seed=4), full)


def test_new_solver_arguments_are_checked(oracle):
    sig = LogSNRSpacing()(linear_schedule(), 4)
    x = _x_T(sig)
    for bad in ({"order": 4}, {"variant": "bh3"}):
        with pytest.raises(ValueError):
            unipc(oracle, x, sig, **bad)
    with pytest.raises(ValueError):
        dpmpp_2m_sde(oracle, x, sig)  # stochastic: needs noise=
    with pytest.raises(ValueError):
        dpmpp_2m_sde(oracle, x, sig, eta=2.0)
