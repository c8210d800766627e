"""eps / x0 / v conversions, min-SNR weights and the VP preconditioner."""

import pytest
import torch

from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.parametrization import (
    EpsPrediction,
    VPrediction,
    X0Prediction,
    eps_from_v,
    eps_from_x0,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.schedules import cosine_schedule, linear_schedule
from diffusion_lab.weighting import MinSNRWeighting, UniformWeighting

PREDICTIONS = [EpsPrediction(), X0Prediction(), VPrediction()]
TOL = {"rtol": 0, "atol": 1e-12}


@pytest.fixture
def vp_batch():
    g = torch.Generator().manual_seed(0)
    ab = torch.rand(16, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    x0 = torch.randn(16, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(16, 5, generator=g, dtype=torch.float64)
    return x0, eps, alpha, sigma, alpha * x0 + sigma * eps


def test_function_round_trips(vp_batch):
    x0, eps, alpha, sigma, x_t = vp_batch
    assert torch.allclose(x0_from_eps(x_t, eps, alpha, sigma), x0, **TOL)
    assert torch.allclose(eps_from_x0(x_t, x0, alpha, sigma), eps, **TOL)
    v = v_from_x0_eps(x0, eps, alpha, sigma)
    assert torch.allclose(v, alpha * eps - sigma * x0, **TOL)
    assert torch.allclose(x0_from_v(x_t, v, alpha, sigma), x0, **TOL)
    assert torch.allclose(eps_from_v(x_t, v, alpha, sigma), eps, **TOL)


@pytest.mark.parametrize("pred", PREDICTIONS, ids=lambda p: p.name)
def test_prediction_round_trips(pred, vp_batch):
    x0, eps, alpha, sigma, x_t = vp_batch
    out = pred.target(x0, eps, alpha, sigma)
    assert torch.allclose(pred.to_x0(out, x_t, alpha, sigma), x0, **TOL)
    assert torch.allclose(pred.to_eps(out, x_t, alpha, sigma), eps, **TOL)
    assert torch.allclose(pred.from_x0(x0, x_t, alpha, sigma), out, **TOL)
    other = torch.randn_like(out)  # from_x0 inverts to_x0 for any output, not only the target
    assert torch.allclose(
        pred.from_x0(pred.to_x0(other, x_t, alpha, sigma), x_t, alpha, sigma), other, **TOL
    )


def test_names_and_zero_snr_support():
    assert [p.name for p in PREDICTIONS] == ["eps", "x0", "v"]
    assert [p.supports_zero_snr for p in PREDICTIONS] == [False, True, True]
    # at alpha = 0 (zero terminal SNR) v and x0 predictions still give x0
    x0, eps = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    a, s = torch.zeros(3, 1, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)
    for pred in PREDICTIONS[1:]:
        out = pred.target(x0, eps, a, s)
        assert torch.allclose(pred.to_x0(out, eps, a, s), x0, **TOL)


def test_min_snr_weights_match_formula():
    snr = torch.tensor([0.0, 1e-3, 0.5, 5.0, 7.0, 1e4], dtype=torch.float64)
    g = 5.0
    clipped = torch.minimum(snr, torch.full_like(snr, g))
    w = MinSNRWeighting(g)
    eps_w = w(snr, EpsPrediction())
    assert torch.allclose(eps_w[1:], clipped[1:] / snr[1:], rtol=1e-15)
    assert eps_w[0].item() == 1.0  # min(0, g)/0 taken as its limit 1, never nan
    assert torch.allclose(w(snr, VPrediction()), clipped / (snr + 1), rtol=1e-15)
    assert torch.allclose(w(snr, X0Prediction()), clipped, rtol=1e-15)
    for pred in PREDICTIONS:
        assert bool(torch.isfinite(w(snr, pred)).all())
        assert torch.equal(UniformWeighting()(snr, pred), torch.ones_like(snr))
    with pytest.raises(ValueError):
        MinSNRWeighting(0.0)


@pytest.mark.parametrize("pred", PREDICTIONS, ids=lambda p: p.name)
@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
def test_vp_denoiser_is_the_exact_denoiser(pred, make):
    """Through the fake backbone, every parametrization recovers D* and eps* at any sigma."""
    sch = make()
    oracle = GaussianOracle.random(dim=6, seed=1)
    denoiser = VPDenoiser(oracle.backbone(sch, pred), sch, pred)
    g = torch.Generator().manual_seed(4)
    sigma = torch.exp(torch.empty(32, dtype=torch.float64).uniform_(-4, 5, generator=g))
    x = oracle.mean + torch.randn(32, 6, generator=g, dtype=torch.float64) * (1 + sigma[:, None])
    assert torch.allclose(denoiser(x, sigma, None), oracle.denoise(x, sigma), rtol=1e-9, atol=1e-9)
    _x0_hat, eps_hat = denoiser.predict(x, sigma, None)
    assert torch.allclose(eps_hat, oracle.eps(x, sigma), rtol=1e-9, atol=1e-9)
    out32 = denoiser(x.float(), sigma, None)
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), oracle.denoise(x, sigma), rtol=1e-4, atol=1e-4)


def test_vp_denoiser_feeds_backbone_vp_input_and_float_t():
    sch = linear_schedule()
    seen = {}

    def backbone(x_vp, t, cond):
        seen.update(x_vp=x_vp, t=t, cond=cond)
        return torch.zeros_like(x_vp)

    den = VPDenoiser(backbone, sch, X0Prediction())
    x = torch.randn(3, 2, 4, 4)
    sigma = sch.sigmas[[0, 500, 999]]
    cond = torch.tensor([1, 2, 3])
    den(x, sigma, cond)
    assert seen["t"].dtype == torch.float32 and seen["cond"] is cond
    assert torch.allclose(seen["t"], torch.tensor([0.0, 500.0, 999.0]))
    scale = (1 + sigma**2).rsqrt().float().view(3, 1, 1, 1)
    assert torch.allclose(seen["x_vp"], x * scale)


def test_vp_denoiser_rejects_eps_at_zero_terminal_snr():
    sch = linear_schedule(zero_terminal_snr=True)
    with pytest.raises(ValueError):
        VPDenoiser(lambda x, t, c: x, sch, EpsPrediction())
    VPDenoiser(lambda x, t, c: x, sch, VPrediction())
