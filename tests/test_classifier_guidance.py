"""Classifier guidance against closed forms: on a Gaussian mixture whose modes are the classes,
the exact noisy classifier's guidance at scale 1 turns the exact mixture denoiser into the exact
denoiser of one mode, and sampling with it draws that mode's Gaussian."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_lab.classifier_guidance import (
    VPClassifier,
    check_classifier_scale,
    classifier_guided,
    log_prob_gradient,
)
from diffusion_lab.mixture_oracle import GaussianMixtureOracle
from diffusion_lab.samplers.ode import dpmpp_2m, heun
from diffusion_lab.schedules import cosine_schedule

MEANS = torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.0, -1.0]])
STD = 0.3


def _mixture() -> GaussianMixtureOracle:
    return GaussianMixtureOracle(MEANS, STD, torch.tensor([0.5, 0.3, 0.2]))


@pytest.mark.parametrize("sigma", [0.01, 0.3, 1.0, 5.0, 80.0])
def test_exact_classifier_at_scale_one_gives_the_exact_class_denoiser(sigma):
    # D(x) + sigma^2 grad log p(k | x) = E[x0 | x, k] = mu_k + s^2/(s^2 + sigma^2)(x - mu_k):
    # a wrong power of sigma or a wrong sign misses it by O(1)
    oracle = _mixture()
    x = torch.randn(9, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    y = torch.arange(9) % 3
    s = torch.full((9,), sigma, dtype=torch.float64)
    guided = classifier_guided(oracle, oracle.class_logits, 1.0)
    exact = oracle.denoise_mode(x, s, y)
    assert torch.allclose(guided(x, s, y), exact, rtol=0, atol=1e-12)
    # the same inside the samplers' no_grad and inference modes
    with torch.no_grad():
        assert torch.allclose(guided(x, s, y), exact, rtol=0, atol=1e-12)
    with torch.inference_mode():
        assert torch.allclose(guided(x, s, y), exact, rtol=0, atol=1e-12)
    # the plain mixture denoiser is not the class denoiser (the test can fail)
    assert (oracle.denoise(x, s) - exact).abs().max() > 1e-3 or sigma < 0.05


def test_log_prob_gradient_matches_finite_differences():
    oracle = _mixture()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = torch.full((4,), 0.7, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    grad = log_prob_gradient(oracle.class_logits, x, s, y)

    def log_p(z):
        return torch.log_softmax(oracle.class_logits(z, s), 1).gather(1, y[:, None])[:, 0]

    h = 1e-6
    for j in range(2):
        e = torch.zeros_like(x)
        e[:, j] = h
        fd = (log_p(x + e) - log_p(x - e)) / (2 * h)
        assert torch.allclose(grad[:, j], fd, atol=1e-7)


def test_scale_zero_is_the_plain_denoiser_and_the_term_is_linear_in_scale():
    oracle = _mixture()
    calls = []

    def counting_classifier(x, sigma):
        calls.append(len(x))
        return oracle.class_logits(x, sigma)

    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    s = torch.full((5,), 0.8, dtype=torch.float64)
    y = torch.tensor([2, 2, 0, 1, 0])
    plain = oracle(x, s)
    assert torch.equal(classifier_guided(oracle, counting_classifier, 0.0)(x, s, y), plain)
    assert calls == []  # scale 0 never calls the classifier
    one = classifier_guided(oracle, oracle.class_logits, 1.0)(x, s, y) - plain
    three = classifier_guided(oracle, oracle.class_logits, 3.0)(x, s, y) - plain
    assert torch.allclose(three, 3 * one, atol=1e-12) and one.abs().max() > 1e-2


def test_the_denoiser_gets_the_class_only_when_asked():
    seen = []

    def denoiser(x, sigma, cond=None):
        seen.append(cond)
        return torch.zeros_like(x)

    x, s, y = torch.zeros(2, 2), torch.ones(2), torch.tensor([1, 0])
    classifier_guided(denoiser, _mixture().class_logits, 1.0)(x, s, y)
    classifier_guided(denoiser, _mixture().class_logits, 1.0, pass_cond=True)(x, s, y)
    assert seen[0] is None and torch.equal(seen[1], y)
    with pytest.raises(ValueError, match="needs the classes"):
        classifier_guided(denoiser, _mixture().class_logits, 1.0)(x, s, None)


@pytest.mark.parametrize("solver,steps", [(heun, 18), (dpmpp_2m, 30)])
def test_guided_sampling_of_the_exact_mixture_draws_the_class_gaussian(solver, steps):
    oracle = _mixture()
    n, k = 4000, 2  # the least likely mode (weight 0.2)
    sigmas = torch.cat([torch.exp(torch.linspace(math.log(80.0), math.log(0.002), steps,
                                                 dtype=torch.float64)), torch.zeros(1)])
    x_t = 80.0 * torch.randn(n, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = torch.full((n,), k)
    out = solver(classifier_guided(oracle, oracle.class_logits, 1.0), x_t.clone(), sigmas, cond=y)
    assert torch.allclose(out.mean(0), MEANS[k].double(), atol=0.03)
    assert torch.allclose(out.std(0), torch.full((2,), STD, dtype=torch.float64), atol=0.03)
    # unguided, the same noise lands in mode k about 20% of the time
    plain = solver(oracle, x_t.clone(), sigmas)
    near_k = ((plain[:, None] - MEANS.double()[None]).norm(dim=2).argmin(1) == k).double().mean()
    assert 0.15 < near_k < 0.25
    # scale 3 samples p(x) p(k|x)^3: every sample in mode k, pushed away from the other modes
    def nearest_is_k(z):
        return ((z[:, None] - MEANS.double()[None]).norm(dim=2).argmin(1) == k).double().mean()

    sharp = solver(classifier_guided(oracle, oracle.class_logits, 3.0), x_t.clone(), sigmas, cond=y)
    assert nearest_is_k(sharp) >= max(nearest_is_k(out), 0.99)
    others = MEANS[[0, 1]].double().mean(0)
    assert (sharp.mean(0) - others).norm() > (MEANS[k].double() - others).norm() + 0.1


def test_vp_classifier_sees_the_vp_input_and_the_training_timestep():
    schedule = cosine_schedule(num_steps=1000)
    seen = {}

    def net(x_vp, t):
        seen["x"], seen["t"] = x_vp, t
        return torch.zeros(len(x_vp), 3)

    x = torch.randn(4, 1, 8, 8)
    sigma = schedule.sigmas[torch.tensor([0, 10, 500, 999])]
    VPClassifier(net, schedule)(x, sigma)
    alpha = 1 / torch.sqrt(1 + sigma**2)
    assert torch.allclose(seen["x"], x * alpha.float()[:, None, None, None], atol=1e-6)
    assert torch.allclose(seen["t"].double(), torch.tensor([0.0, 10, 500, 999], dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "2"])
def test_bad_classifier_scale_is_refused_in_one_line(bad):
    with pytest.raises(ValueError, match="classifier_scale must be a finite number >= 0"):
        check_classifier_scale(bad)
    assert check_classifier_scale(2) == 2.0
