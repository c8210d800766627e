"""Noise schedules against closed forms computed independently in float64."""

import math

import pytest
import torch

from diffusion_lab.schedules import (
    NoiseSchedule,
    cosine_schedule,
    linear_schedule,
    rescale_zero_terminal_snr,
    sigmoid_schedule,
)

CONSTRUCTORS = [linear_schedule, cosine_schedule, sigmoid_schedule]


def test_linear_endpoints_are_ddpm_constants():
    sch = linear_schedule()
    assert sch.num_steps == 1000
    assert sch.betas[0].item() == pytest.approx(1e-4, rel=1e-12)
    assert sch.betas[-1].item() == pytest.approx(0.02, rel=1e-12)
    assert torch.allclose(
        sch.betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64)
    )
    half = linear_schedule(num_steps=500)  # improved-diffusion rescaling by 1000/T
    assert half.betas[0].item() == pytest.approx(2e-4, rel=1e-12)
    assert half.betas[-1].item() == pytest.approx(0.04, rel=1e-12)


def test_linear_rejects_betas_above_one():
    with pytest.raises(ValueError):
        linear_schedule(num_steps=10)


def test_cosine_matches_nichol_dhariwal():
    T, s = 1000, 0.008

    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    sch = cosine_schedule(T)
    expected = torch.tensor([f((t + 1) / T) / f(0) for t in range(T)], dtype=torch.float64)
    assert sch.alpha_bars[0].item() > 0.9999
    assert bool((sch.betas <= 0.999).all())
    # the cap only bites at the very end; elsewhere ab is exactly f(t/T)/f(0)
    assert torch.allclose(sch.alpha_bars[:-1], expected[:-1], rtol=1e-9, atol=0)
    assert sch.betas[-1].item() == pytest.approx(0.999)


def test_sigmoid_matches_chen_2023():
    T, start, end, tau = 1000, -3.0, 3.0, 1.0

    def sig(v):
        return 1 / (1 + math.exp(-v))

    def ab(u):
        return (sig(end / tau) - sig((u * (end - start) + start) / tau)) / (
            sig(end / tau) - sig(start / tau)
        )

    sch = sigmoid_schedule(T, start, end, tau)
    expected = torch.tensor([ab((t + 1) / T) for t in range(T - 1)], dtype=torch.float64)
    assert torch.allclose(sch.alpha_bars[:-1], expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("make", CONSTRUCTORS)
@pytest.mark.parametrize("ztsnr", [False, True])
def test_alpha_bar_decreasing_and_sigmas_ascending(make, ztsnr):
    sch = make(zero_terminal_snr=ztsnr)
    assert bool((sch.alpha_bars.diff() < 0).all())
    assert bool((sch.sigmas.diff() > 0).all())
    assert sch.sigma_min == sch.sigmas[0].item() and sch.sigma_max == sch.sigmas[-1].item()
    assert math.isfinite(sch.sigma_max)
    ab = sch.alpha_bars[:-1]  # the terminal step is special only under zero terminal SNR
    assert torch.allclose(sch.sigmas[:-1], ((1 - ab) / ab).sqrt(), rtol=1e-12, atol=0)
    assert torch.allclose(sch.alpha_bar_at(sch.sigmas[:-1]), ab, rtol=1e-12, atol=0)
    assert torch.allclose(sch.log_snr[:-1], torch.log(ab / (1 - ab)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", CONSTRUCTORS)
def test_zero_terminal_snr(make):
    plain, zero = make(), make(zero_terminal_snr=True)
    assert zero.alpha_bars[-1].item() == 0.0
    assert zero.betas[-1].item() == 1.0
    assert zero.zero_terminal_snr and not plain.zero_terminal_snr
    assert zero.alpha_bars[0].item() == pytest.approx(plain.alpha_bars[0].item(), rel=1e-12)
    # Lin et al. Alg. 1: the new sqrt(ab) is an affine map of the old one
    old, new = plain.alpha_bars.sqrt(), zero.alpha_bars.sqrt()
    slope = (new[0] - new[-1]) / (old[0] - old[-1])
    assert torch.allclose(new, slope * (old - old[-1]), rtol=0, atol=1e-12)
    assert zero.snr[-1].item() == 0.0 and zero.log_snr[-1].item() == -math.inf
    # sampling view: finite sigma_max, at least 2**12 (ab clamped at 2**-24 or below)
    assert 4095 < zero.sigma_max < math.inf
    assert torch.allclose(rescale_zero_terminal_snr(plain.betas), zero.betas, rtol=0, atol=0)


def test_q_sample_exact_and_broadcast():
    sch = linear_schedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 5, 5, generator=g)
    noise = torch.randn(4, 3, 5, 5, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    out = sch.q_sample(x0, t, noise)
    assert out.dtype == torch.float32 and out.shape == x0.shape
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t]
    ref = (
        ab.sqrt().view(4, 1, 1, 1) * x0.double() + (1 - ab).sqrt().view(4, 1, 1, 1) * noise.double()
    )
    assert torch.allclose(out.double(), ref, atol=1e-6)
    alpha, sigma = sch.coefficients(t)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones(4, dtype=torch.float64), atol=1e-15)


def test_q_sample_moments():
    sch = cosine_schedule()
    g = torch.Generator().manual_seed(1)
    n, t = 200_000, torch.full((200_000,), 300)
    x0 = torch.full((n, 1), 2.0, dtype=torch.float64)
    out = sch.q_sample(x0, t, torch.randn(n, 1, generator=g, dtype=torch.float64))
    ab = sch.alpha_bars[300].item()
    assert out.mean().item() == pytest.approx(2 * math.sqrt(ab), abs=4 * math.sqrt((1 - ab) / n))
    assert out.var().item() == pytest.approx(1 - ab, rel=4 * math.sqrt(2 / n))


def test_posterior_matches_bayes_rule():
    """Gaussian conditioning: precision = 1/(1-ab_{t-1}) + alpha_t/beta_t,
    mean = var * (natural parameters)."""
    sch = linear_schedule()
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(5, 7, generator=g, dtype=torch.float64)
    x_t = torch.randn(5, 7, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 100, 700, 999])
    mean, var = sch.posterior_mean_variance(x0, x_t, t)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    ab_prev, alpha, beta = ab[t - 1], 1 - betas[t], betas[t]
    prec = 1 / (1 - ab_prev) + alpha / beta
    ref_var = 1 / prec
    ref_mean = ref_var[:, None] * (
        ab_prev.sqrt()[:, None] * x0 / (1 - ab_prev)[:, None]
        + alpha.sqrt()[:, None] * x_t / beta[:, None]
    )
    assert torch.allclose(var.squeeze(1), ref_var, rtol=1e-10)
    assert torch.allclose(mean, ref_mean, rtol=1e-10, atol=1e-12)
    # t = 0: ab_{-1} = 1, so the posterior is a point mass at x0
    mean0, var0 = sch.posterior_mean_variance(x0, x_t, torch.zeros(5, dtype=torch.long))
    assert torch.allclose(mean0, x0, atol=1e-12) and bool((var0 == 0).all())


@pytest.mark.parametrize("make", CONSTRUCTORS)
def test_sigma_to_t_inverse(make):
    sch = make()
    T = sch.num_steps
    assert torch.equal(sch.sigma_to_t(sch.sigmas), torch.arange(T, dtype=torch.float64))
    t = torch.rand(1000, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * (T - 1)
    assert torch.allclose(sch.sigma_to_t(sch.t_to_sigma(t)), t, atol=1e-9)
    assert torch.allclose(sch.t_to_sigma(torch.arange(T)), sch.sigmas, rtol=1e-14)
    # halfway in t is the geometric mean of neighbouring sigmas (log-linear)
    mid = sch.t_to_sigma(torch.tensor([10.5]))
    assert mid.item() == pytest.approx(
        math.sqrt(sch.sigmas[10].item() * sch.sigmas[11].item()), rel=1e-12
    )
    clamped = sch.sigma_to_t(torch.tensor([0.0, sch.sigma_min / 2, sch.sigma_max * 2]))
    assert clamped.tolist() == [0.0, 0.0, float(T - 1)]


def test_rejects_bad_betas():
    with pytest.raises(ValueError):
        NoiseSchedule(torch.tensor([0.1, 0.0, 0.2]))
    with pytest.raises(ValueError):
        NoiseSchedule(torch.tensor([0.1, 1.2]))
    with pytest.raises(ValueError):
        NoiseSchedule(torch.tensor([0.1, 1.0, 0.2]))  # ab = 0 before the end
    with pytest.raises(ValueError):
        sigmoid_schedule(start=3.0, end=-3.0)
    with pytest.raises(ValueError):
        linear_schedule().q_sample(torch.zeros(2, 3), torch.tensor([1.0, 2.0]), torch.zeros(2, 3))
