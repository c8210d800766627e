"""Classifier-free guidance identities and label dropout."""

import pytest
import torch

from diffusion_lab.guidance import classifier_free, drop_labels

NULL = 3


class ClassDenoiser:
    """Deterministic class-dependent fake D(x, sigma, cond) (null class: mean 0); counts calls."""

    def __init__(self):
        self.means = torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0], [0.0, 0.0]])
        self.calls = 0
        self.batches = []

    def __call__(self, x, sigma, cond):
        self.calls += 1
        self.batches.append(cond.clone())
        mu = self.means[cond]
        k = (1.0 / (1.0 + sigma.float() ** 2)).view(-1, 1)
        return mu + k * torch.sin(x - mu) * (1 + cond.view(-1, 1))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 2, generator=g)
    sigma = torch.rand(5, generator=g, dtype=torch.float64) * 3 + 0.1
    cond = torch.tensor([0, 1, 2, 0, 1])
    return x, sigma, cond


def test_scale_one_is_the_conditional_denoiser(batch):
    x, sigma, cond = batch
    inner = ClassDenoiser()
    guided = classifier_free(inner, 1.0, NULL)
    assert torch.equal(guided(x, sigma, cond), ClassDenoiser()(x, sigma, cond))
    assert inner.calls == 1 and torch.equal(inner.batches[0], cond)  # no unconditional half


def test_scale_zero_is_the_unconditional_denoiser(batch):
    x, sigma, cond = batch
    inner = ClassDenoiser()
    out = classifier_free(inner, 0.0, NULL)(x, sigma, cond)
    assert torch.equal(out, ClassDenoiser()(x, sigma, torch.full_like(cond, NULL)))
    assert inner.calls == 1 and bool((inner.batches[0] == NULL).all())


@pytest.mark.parametrize("scale", [0.5, 2.0, 7.5])
def test_guided_equals_eps_space_formula_with_one_call(batch, scale):
    x, sigma, cond = batch
    inner = ClassDenoiser()
    out = classifier_free(inner, scale, NULL)(x, sigma, cond)
    assert inner.calls == 1 and inner.batches[0].shape == (10,)
    ref = ClassDenoiser()
    d_c, d_u = ref(x, sigma, cond), ref(x, sigma, torch.full_like(cond, NULL))
    s = sigma.float().view(-1, 1)
    eps_c, eps_u = (x - d_c) / s, (x - d_u) / s
    eps_g = eps_u + scale * (eps_c - eps_u)
    assert torch.allclose(out, x - s * eps_g, atol=1e-5)


def test_guidance_is_finite_at_sigma_zero(batch):
    x, _, cond = batch
    out = classifier_free(ClassDenoiser(), 4.0, NULL)(x, torch.zeros(5, dtype=torch.float64), cond)
    assert bool(torch.isfinite(out).all())


def test_guidance_rejects_bad_input(batch):
    x, sigma, _ = batch
    with pytest.raises(ValueError):
        classifier_free(ClassDenoiser(), -0.5, NULL)
    with pytest.raises(ValueError):
        classifier_free(ClassDenoiser(), 2.0, NULL)(x, sigma, None)


def test_drop_labels_rate_and_values():
    cond = torch.randint(0, NULL, (100_000,), generator=torch.Generator().manual_seed(1))
    for p in (0.0, 0.1, 0.5, 1.0):
        out = drop_labels(cond, p, null_class=NULL, generator=torch.Generator().manual_seed(2))
        dropped = out == NULL
        assert abs(dropped.float().mean().item() - p) < 0.005
        assert torch.equal(out[~dropped], cond[~dropped])
    a = drop_labels(cond, 0.3, null_class=NULL, generator=torch.Generator().manual_seed(3))
    b = drop_labels(cond, 0.3, null_class=NULL, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError):
            drop_labels(cond, bad, null_class=NULL)
