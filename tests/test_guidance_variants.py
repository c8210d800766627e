"""Guidance interval and autoguidance: identities against plain CFG and the conditional model,
forward-pass counts, and the config wiring."""

import pytest
import torch
from omegaconf import OmegaConf

from diffusion_lab.guidance import classifier_free
from diffusion_lab.guidance_variants import (
    autoguidance,
    guidance_rule,
    interval_guidance,
)
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.tasks.guidance_setup import configure_guidance
from diffusion_lab.tasks.validate import ConfigError

NULL = 3


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


def test_no_options_leave_plain_cfg():
    class Module:
        guidance_rule = None

    m = Module()
    configure_guidance(m, OmegaConf.create({"scale": 3.0, "interval": None}))
    assert m.guidance_rule is None
