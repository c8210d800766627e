"""The linear flow path against closed forms: marginals, velocity, the sigma-space mapping,
the timestep draws, and the path-family checks."""

import math

import pytest
import torch

from diffusion_lab.objectives import DenoisingObjective
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.parametrization import (
    EpsPrediction,
    FlowVelocityPrediction,
    VPrediction,
    X0Prediction,
)
from diffusion_lab.paths import LinearFlowPath
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.schedules import cosine_schedule
from diffusion_lab.timestep_sampling import (
    LogitNormalTimesteps,
    UniformIntegerTimesteps,
    UniformTimesteps,
)


@pytest.fixture(scope="module")
def path():
    return LinearFlowPath(num_steps=1000)


@pytest.fixture(scope="module")
def oracle():
    return GaussianOracle.random(dim=8, seed=0, std_min=0.1, std_max=1.0)


def test_sigma_mapping_is_t_over_one_minus_t(path):
    idx = torch.tensor([0.0, 1.0, 250.5, 999.0], dtype=torch.float64)
    tc = 1e-3 + (0.999 - 1e-3) * idx / 999
    assert torch.allclose(path.t_to_sigma(idx), tc / (1 - tc), rtol=1e-12)
    assert torch.allclose(path.sigma_to_t(path.t_to_sigma(idx)), idx, atol=1e-9)
    # the sampling table, the VP-equivalent alpha_bars and the network-input scaling agree
    assert torch.allclose(path.sigmas, path.t_to_sigma(torch.arange(1000)), rtol=1e-12)
    assert torch.allclose(path.alpha_bars, 1 / (1 + path.sigmas**2), rtol=1e-9)
    alpha, sigma_path = path.sigma_space_coefficients(path.sigmas)
    assert torch.allclose(alpha, 1 - path.time(torch.arange(1000)), rtol=1e-12)
    assert torch.allclose(alpha + sigma_path, torch.ones(1000, dtype=torch.float64))
    assert path.sigma_min == pytest.approx(1e-3 / 0.999) and path.sigma_max == pytest.approx(999.0)


def test_marginal_of_gaussian_data(path, oracle):
    """x_t = (1 - t) x0 + t eps has mean (1 - t) mu and variance (1 - t)^2 s^2 + t^2; divided by
    (1 - t) it is the sigma-space sample x0 + sigma eps."""
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = oracle.mean + oracle.std * torch.randn(n, oracle.dim, generator=g, dtype=torch.float64)
    noise = torch.randn(n, oracle.dim, generator=g, dtype=torch.float64)
    t = torch.full((n,), 700.25, dtype=torch.float64)  # fractional timesteps are exact points
    tc = path.time(t[0]).item()
    x_t = path.q_sample(x0, t, noise)
    assert torch.allclose(x_t.mean(0), (1 - tc) * oracle.mean, atol=0.01)
    assert torch.allclose(x_t.var(0), (1 - tc) ** 2 * oracle.std**2 + tc**2, rtol=0.02)
    sigma = tc / (1 - tc)
    assert torch.allclose(x_t / (1 - tc), x0 + sigma * noise, atol=1e-12)


@pytest.mark.parametrize("prediction", [FlowVelocityPrediction(), EpsPrediction(), X0Prediction()])
def test_exact_network_gives_the_exact_denoiser(path, oracle, prediction):
    """A backbone returning the exact target on x_t = (1 - t) x is, through the sigma-space
    wrapper, the exact posterior mean D*(x; sigma) at every level (velocity, eps or x0)."""
    den = VPDenoiser(oracle.backbone(path, prediction), path, prediction)
    x = torch.randn(16, oracle.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for sigma in (0.01, 0.5, 3.0, 200.0):
        want = oracle.denoise(x * math.sqrt(1 + sigma**2), sigma)
        got = den(x * math.sqrt(1 + sigma**2), torch.full((16,), sigma, dtype=torch.float64))
        assert torch.allclose(got, want, atol=1e-9), sigma


class _Fixed:
    """A timestep sampler always drawing the same t."""

    def __init__(self, t):
        self.t = t

    def __call__(self, batch, schedule, device="cpu", generator=None):
        return torch.full((batch,), self.t, dtype=torch.float64)


def test_velocity_loss_of_the_exact_network_is_its_closed_form(path, oracle):
    """With the exact velocity network the loss is E Var(u | x_t) = Var(x0 | x_t) / t^2 per
    dimension, Var(x0 | x_sigma) = s^2 sigma^2 / (s^2 + sigma^2): target, path and draw agree."""
    pred = FlowVelocityPrediction()
    t_index = 400.0
    obj = DenoisingObjective(path, pred, timesteps=_Fixed(t_index))
    g = torch.Generator().manual_seed(2)
    x0 = oracle.mean + oracle.std * torch.randn(100_000, oracle.dim, generator=g, dtype=torch.float64)
    out = obj(oracle.backbone(path, pred), x0, generator=g)
    tc = path.time(torch.tensor(t_index)).item()
    sigma = tc / (1 - tc)
    var = oracle.std**2
    expected = (var * sigma**2 / (var + sigma**2) / tc**2).mean().item()
    assert out.loss.item() == pytest.approx(expected, rel=0.02)
    assert out.t.dtype == torch.float64


def test_timestep_draws():
    g = lambda: torch.Generator().manual_seed(0)
    path, vp = LinearFlowPath(num_steps=1000), cosine_schedule()
    t = LogitNormalTimesteps(loc=0.5, scale=0.8)(100_000, path, generator=g())
    u = t / 999
    logit = torch.log(u / (1 - u))
    assert logit.mean().item() == pytest.approx(0.5, abs=0.01)
    assert logit.std().item() == pytest.approx(0.8, abs=0.01)
    assert t.dtype == torch.float64 and bool((t != t.round()).any())  # continuous on the path
    t_vp = LogitNormalTimesteps()(1000, vp, generator=g())
    assert t_vp.dtype == torch.int64 and int(t_vp.min()) >= 0 and int(t_vp.max()) <= 999
    uni = UniformTimesteps()(100_000, path, generator=g())
    assert uni.mean().item() == pytest.approx(499.5, rel=0.01) and float(uni.max()) <= 999
    # the VP default is the DDPM draw, unchanged: same stream as torch.randint
    assert torch.equal(UniformIntegerTimesteps()(64, vp, generator=g()),
                       torch.randint(0, 1000, (64,), generator=g()))
    with pytest.raises(ValueError, match="scale must be > 0"):
        LogitNormalTimesteps(scale=0.0)


def test_path_family_checks():
    with pytest.raises(ValueError, match="needs the linear path"):
        DenoisingObjective(cosine_schedule(), FlowVelocityPrediction())
    with pytest.raises(ValueError, match="needs the vp path"):
        VPDenoiser(lambda x, t, c: x, LinearFlowPath(), VPrediction())
    with pytest.raises(ValueError, match="t_min < t_max"):
        LinearFlowPath(t_min=0.5, t_max=0.4)
