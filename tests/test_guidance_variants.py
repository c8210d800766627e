"""Guidance interval, autoguidance and guidance rescale: identities against plain CFG and the
conditional model, forward-pass counts, and the config wiring."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from diffusion_lab.guidance import classifier_free, rescale_guided
from diffusion_lab.guidance_variants import (
    autoguidance,
    guidance_rule,
    interval_guidance,
)
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.tasks.guidance_setup import configure_guidance
from diffusion_lab.tasks.validate import ConfigError

NULL = 3
ROOT = Path(__file__).resolve().parents[1]


class RowCounter:
    """A class-dependent affine denoiser counting the rows it is evaluated on."""

    def __init__(self, shift: float = 0.0) -> None:
        self.rows, self.shift = 0, shift

    def __call__(self, x, sigma, cond=None):
        self.rows += x.shape[0]
        return 0.5 * x + cond[:, None].to(x.dtype) + self.shift / (1 + sigma[:, None] ** 2)


def _inputs(sigma: float, n: int = 4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, generator=g), torch.full((n,), sigma), torch.arange(n) % 3


@pytest.mark.parametrize("sigma,inside", [(0.1, False), (1.0, True), (5.0, True), (30.0, False)])
def test_interval_guidance_is_cfg_inside_and_conditional_outside(sigma, inside):
    d = RowCounter()
    x, s, c = _inputs(sigma)
    out = interval_guidance(d, 3.0, NULL, [0.3, 5.0])(x, s, c)
    ref = classifier_free(RowCounter(), 3.0, NULL)(x, s, c) if inside else RowCounter()(x, s, c)
    assert torch.allclose(out, ref)
    assert d.rows == (8 if inside else 4)  # outside: one conditional pass, half the forward rows


def test_interval_guidance_splits_a_mixed_batch():
    x, _, c = _inputs(0.0)
    s = torch.tensor([0.1, 1.0, 2.0, 30.0])
    out = interval_guidance(RowCounter(), 2.0, NULL, [0.3, 5.0])(x, s, c)
    for i in range(4):
        single = interval_guidance(RowCounter(), 2.0, NULL, [0.3, 5.0])(x[i:i + 1], s[i:i + 1], c[i:i + 1])
        assert torch.allclose(out[i:i + 1], single)


def test_autoguidance_formula_and_identities():
    main, weak = GaussianOracle(torch.zeros(2), torch.ones(2)), RowCounter(shift=1.0)
    x, s, c = _inputs(2.0)
    for w in (0.0, 1.5, 3.0):
        out = autoguidance(main, weak, w)(x, s, c)
        d_weak = RowCounter(shift=1.0)(x, s, c)
        assert torch.allclose(out, d_weak + w * (main(x, s, c) - d_weak))
    assert autoguidance(main, weak, 1.0) is main
    assert torch.allclose(autoguidance(main, main, 2.5)(x, s, c), main(x, s, c))
    with pytest.raises(ValueError):
        autoguidance(main, weak, -1.0)


def test_guidance_rule_combines_guide_and_interval():
    main, weak = RowCounter(), RowCounter(shift=1.0)
    rule = guidance_rule([0.3, 5.0], weak)
    for sigma in (1.0, 10.0):
        x, s, c = _inputs(sigma)
        out = rule(main, 2.0, NULL)(x, s, c)
        ref = autoguidance(RowCounter(), RowCounter(shift=1.0), 2.0)(x, s, c) if sigma < 5 else RowCounter()(x, s, c)
        assert torch.allclose(out, ref)


@pytest.mark.parametrize("bad", [[5.0, 0.3], [-1.0, 2.0], [1.0], "x"])
def test_bad_interval_is_a_config_error(bad):
    class Module:
        guidance_rule = None

    with pytest.raises(ConfigError):
        configure_guidance(Module(), OmegaConf.create({"interval": bad}))


@pytest.mark.parametrize("preset,key", [("autoguidance", "guide_ckpt"),
                                        ("classifier", "classifier_ckpt")])
def test_a_guidance_preset_without_its_checkpoint_is_a_config_error(preset, key):
    guidance = OmegaConf.load(ROOT / "conf" / "guidance" / f"{preset}.yaml")
    assert OmegaConf.is_missing(guidance, key)  # the preset leaves it to the command line

    class Module:
        guidance_rule = None

    with pytest.raises(ConfigError, match=f"guidance={preset} needs guidance.{key}="):
        configure_guidance(Module(), guidance)


def test_no_options_leave_plain_cfg():
    class Module:
        guidance_rule = None

    m = Module()
    configure_guidance(m, OmegaConf.create({"scale": 3.0, "interval": None}))
    assert m.guidance_rule is None


def _eps(x, d, sigma):
    return (x - d) / sigma[:, None]


class ClassSlope:
    """D = (0.2 + 0.2 cond) x + cond: the class changes the spread of eps = (x - D) / sigma, so
    guidance away from the null class (slope 0.8) inflates it."""

    def __call__(self, x, sigma, cond=None):
        k = cond[:, None].to(x.dtype)
        return (0.2 + 0.2 * k) * x + k


@pytest.mark.parametrize("phi", [0.0, 0.4, 1.0])
def test_guidance_rescale_formula_in_eps_space(phi):
    """eps_out = phi eps_g std(eps_c) / std(eps_g) + (1 - phi) eps_g, per sample (Lin et al.
    2024), computed here in eps space from the two predictions of a batched CFG call."""
    x, s, c = _inputs(2.0, n=5)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    d = ClassSlope()
    w = 4.0
    d_c, d_u = d(x, s, c), d(x, s, torch.full_like(c, NULL))
    eps_c, eps_g = _eps(x, d_c, s), _eps(x, d_u + w * (d_c - d_u), s)
    ratio = eps_c.std(dim=1, keepdim=True) / eps_g.std(dim=1, keepdim=True)
    expected = phi * eps_g * ratio + (1 - phi) * eps_g
    out = classifier_free(d, w, NULL, rescale=phi)(x, s, c)
    assert torch.allclose(_eps(x, out, s), expected, atol=1e-5)
    if phi == 1.0:  # the guided eps has exactly the conditional eps's std, sample by sample
        assert torch.allclose(_eps(x, out, s).std(dim=1), eps_c.std(dim=1), rtol=1e-5)
        assert not torch.allclose(eps_g.std(dim=1), eps_c.std(dim=1), rtol=1e-2)  # w inflated it
    if phi == 0.0:
        assert torch.equal(out, classifier_free(d, w, NULL)(x, s, c))


def test_guidance_rescale_is_finite_at_sigma_zero_and_off_at_w1():
    x = torch.randn(3, 4)
    same = x.clone()  # D = x: eps = 0 (sigma = 0), std 0: left as guided
    assert torch.equal(rescale_guided(x, same, x + 1.0, 0.7), same)
    d = RowCounter()
    assert classifier_free(d, 1.0, NULL, rescale=0.7) is d  # w = 1: no guidance to rescale


def test_autoguidance_rescale_matches_the_main_model_std():
    x, s, c = _inputs(1.5, n=4)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    main = ClassSlope()
    weak = lambda x, sigma, cond: 0.5 * main(x, sigma, cond)
    plain = autoguidance(main, weak, 3.0)(x, s, c)
    out = autoguidance(main, weak, 3.0, rescale=1.0)(x, s, c)
    target = _eps(x, main(x, s, c), s).std(dim=1)
    assert torch.allclose(_eps(x, out, s).std(dim=1), target, rtol=1e-5)
    assert not torch.allclose(_eps(x, plain, s).std(dim=1), target, rtol=1e-2)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x", True])
def test_bad_rescale_is_a_config_error(bad):
    class Module:
        guidance_rule = None

    with pytest.raises(ConfigError, match="guidance.rescale must be a number in"):
        configure_guidance(Module(), OmegaConf.create({"rescale": bad}))


def test_rescale_in_the_config_sets_a_rule():
    class Module:
        guidance_rule = None

    m = Module()
    configure_guidance(m, OmegaConf.create({"scale": 3.0, "interval": None, "rescale": 0.7}))
    x, s, c = _inputs(2.0)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    guided = m.guidance_rule(ClassSlope(), 3.0, NULL)(x, s, c)
    assert torch.allclose(guided, classifier_free(ClassSlope(), 3.0, NULL, rescale=0.7)(x, s, c))
    assert not torch.allclose(guided, classifier_free(ClassSlope(), 3.0, NULL)(x, s, c))


def test_guidance_options_record_what_is_on():
    from diffusion_lab.tasks.guidance_setup import guidance_options

    assert guidance_options(OmegaConf.create({"scale": 3.0, "interval": None, "rescale": 0.0})) == {}
    on = OmegaConf.create({"scale": 3.0, "interval": [0.3, 5], "rescale": 0.7, "guide_ckpt": "a.ckpt"})
    assert guidance_options(on) == {"guidance_interval": [0.3, 5], "guidance_rescale": 0.7,
                                    "guidance_guide_ckpt": "a.ckpt"}
