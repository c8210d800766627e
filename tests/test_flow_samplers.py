"""Flow samplers in t (Euler, midpoint) against the exact Gaussian flow: order, identities, NFE."""

import itertools
import math

import pytest
import torch

from diffusion_lab.discretization import UniformSpacing
from diffusion_lab.noise import PerSampleNoise
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.parametrization import FlowVelocityPrediction
from diffusion_lab.paths import LinearFlowPath
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import count_nfe, euler, flow_euler, flow_midpoint, solver_nfe
from diffusion_lab.samplers.flow import UniformTimeSpacing


@pytest.fixture(scope="module")
def oracle():
    return GaussianOracle.random(dim=8, seed=0, std_min=0.1, std_max=1.0)


@pytest.fixture(scope="module")
def path():
    return LinearFlowPath(num_steps=1000)


def _x_T(sigmas, n=4, seed=0):
    z = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z * math.sqrt(1 + sigmas[0].item() ** 2)


@pytest.mark.parametrize("solver,order", [(flow_euler, 1), (flow_midpoint, 2)])
def test_convergence_order_in_t(solver, order, oracle, path):
    """On the uniform-in-t grid the error against the exact flow (then the shared final denoise
    step) shrinks by 2**order per doubling of steps: Euler exactly first order; the midpoint rule
    at least second (~8x per doubling on Gaussian data, whose h^2 error term nearly cancels)."""
    errs = []
    for n in (32, 64, 128):
        sig = UniformTimeSpacing()(path, n)
        x = _x_T(sig)
        ref = oracle.denoise(oracle.flow(x, sig[0].item(), sig[-2].item()), sig[-2].item())
        errs.append((solver(oracle, x, sig) - ref).abs().max().item())
    for a, b in itertools.pairwise(errs):
        assert 2**order * 0.8 < a / b, errs
        if order == 1:
            assert a / b < 2.5, errs


def test_euler_in_t_is_the_sigma_space_euler_step(oracle, path):
    sig = UniformSpacing()(path, 12)
    x = _x_T(sig, n=16)
    assert torch.allclose(flow_euler(oracle, x, sig), euler(oracle, x, sig), atol=1e-10)


def test_flow_model_through_the_sampler_spec(oracle, path):
    """An exact velocity network sampled with flow_midpoint (10 steps, uniform t) through the
    sigma-space seam lands near the exact ODE endpoint; NFE counted as declared."""
    pred = FlowVelocityPrediction()
    den = count_nfe(VPDenoiser(oracle.backbone(path, pred), path, pred))
    spec = SamplerSpec(flow_midpoint, UniformTimeSpacing(shift=3.0), 10)
    out = spec.sample(den, path, (64, 8), seed=3).double()
    sig = spec.sigmas(path)
    x_T = PerSampleNoise(3, range(64), stream=0).sample((64, 8), "cpu", torch.float64)
    x_T = x_T * math.sqrt(1 + sig[0].item() ** 2)
    ref = oracle.denoise(oracle.flow(x_T, sig[0].item(), sig[-2].item()), sig[-2].item())
    assert (out - ref).abs().max().item() < 0.02
    assert den.nfe == spec.nfe == solver_nfe(flow_midpoint, 10) == 19


def test_uniform_time_spacing(path):
    sig = UniformTimeSpacing()(path, 4)
    t = sig / (1 + sig)
    assert sig[0].item() == path.sigma_max and sig[-1].item() == 0.0
    assert torch.allclose(t[1:], torch.tensor([0.75, 0.5, 0.25, 0.0], dtype=torch.float64) * t[0])
    shifted = UniformTimeSpacing(shift=3.0)(path, 4)
    assert bool((shifted[1:-1] > sig[1:-1]).all())  # more of the grid at high noise
    with pytest.raises(ValueError, match="shift must be > 0"):
        UniformTimeSpacing(shift=0.0)
