"""The denoising objective: timestep sampling, targets, weighting, reproducibility."""

import pytest
import torch

from diffusion_lab.objectives import DenoisingObjective
from diffusion_lab.parametrization import EpsPrediction, VPrediction, X0Prediction
from diffusion_lab.schedules import cosine_schedule, linear_schedule
from diffusion_lab.weighting import MinSNRWeighting


class Recorder:
    """Backbone returning zeros (so the loss is w * mean(target^2)) and recording its inputs."""

    def __init__(self):
        self.calls = []

    def __call__(self, x_t, t, cond):
        self.calls.append((x_t, t, cond))
        return torch.zeros_like(x_t)


def _recovered_noise(sch, x0, x_t, t):
    ab = sch.alpha_bars[t].view(-1, *([1] * (x0.ndim - 1)))
    return (x_t.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()


@pytest.mark.parametrize(
    "pred", [EpsPrediction(), X0Prediction(), VPrediction()], ids=lambda p: p.name
)
def test_targets_and_uniform_weighting(pred):
    sch = cosine_schedule(100)
    obj = DenoisingObjective(sch, pred)
    bb = Recorder()
    x0 = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    cond = torch.arange(64)
    res = obj(bb, x0, cond, generator=torch.Generator().manual_seed(1))
    ((x_t, t_in, cond_in),) = bb.calls
    assert t_in.dtype == torch.float32 and torch.equal(t_in, res.t.float()) and cond_in is cond
    assert res.t.dtype == torch.long and res.per_sample_loss.shape == (64,)
    noise = _recovered_noise(sch, x0, x_t, res.t)
    ab = sch.alpha_bars[res.t].view(-1, 1, 1, 1)
    target = {
        "eps": noise,
        "x0": x0.double(),
        "v": ab.sqrt() * noise - (1 - ab).sqrt() * x0.double(),
    }[pred.name]
    expected = target.pow(2).flatten(1).mean(1)
    assert torch.allclose(res.per_sample_loss.double(), expected, rtol=1e-4, atol=1e-5)
    assert res.loss.item() == pytest.approx(res.per_sample_loss.mean().item(), rel=1e-6)


def test_min_snr_weighting_applied_per_sample():
    sch = linear_schedule(200)
    obj = DenoisingObjective(sch, X0Prediction(), MinSNRWeighting(5.0))
    x0 = torch.randn(128, 6, generator=torch.Generator().manual_seed(2))
    res = obj(Recorder(), x0, generator=torch.Generator().manual_seed(3))
    snr = sch.alpha_bars[res.t] / (1 - sch.alpha_bars[res.t])
    expected = torch.clamp(snr, max=5.0) * x0.double().pow(2).mean(1)
    assert torch.allclose(res.per_sample_loss.double(), expected, rtol=1e-5)


def test_noise_and_timesteps_distribution():
    sch = linear_schedule(50)
    obj = DenoisingObjective(sch, EpsPrediction())
    g = torch.Generator().manual_seed(4)
    t = obj.sample_t(20_000, "cpu", g)
    counts = torch.bincount(t, minlength=50)
    assert t.min().item() == 0 and t.max().item() == 49 and counts.numel() == 50
    assert counts.min().item() > 300  # expected 400 each
    bb = Recorder()
    x0 = torch.zeros(4096, 8)
    res = obj(bb, x0, generator=g)
    noise = _recovered_noise(sch, x0, bb.calls[0][0], res.t)
    assert abs(noise.mean().item()) < 0.01 and abs(noise.var().item() - 1) < 0.02


def test_reproducible_with_generator_and_exact_backbone_gives_zero():
    sch = cosine_schedule(100)
    obj = DenoisingObjective(sch, VPrediction())
    x0 = torch.randn(16, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a = obj(Recorder(), x0, generator=torch.Generator().manual_seed(6))
    b = obj(Recorder(), x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.per_sample_loss, b.per_sample_loss) and torch.equal(a.t, b.t)

    def oracle_v(x_t, t, cond):  # knows x0, so predicts v exactly
        ab = sch.alpha_bars[t.long()].view(-1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0

    assert obj(oracle_v, x0, generator=torch.Generator().manual_seed(7)).loss.item() < 1e-10


def test_rejects_eps_on_zero_terminal_snr_and_bad_output_shape():
    with pytest.raises(ValueError):
        DenoisingObjective(linear_schedule(zero_terminal_snr=True), EpsPrediction())
    DenoisingObjective(linear_schedule(zero_terminal_snr=True), VPrediction())
    obj = DenoisingObjective(linear_schedule(), EpsPrediction())
    with pytest.raises(ValueError):
        obj(lambda x, t, c: x[:, :1], torch.zeros(2, 3))
