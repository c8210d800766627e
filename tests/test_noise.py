"""Per-sample seeds: a sample does not depend on its batch-mates."""

import functools

import pytest
import torch

from diffusion_lab.discretization import KarrasSpacing, UniformSpacing
from diffusion_lab.noise import PerSampleNoise, initial_noise, mix_seed
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.parametrization import EpsPrediction
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import ddim, ddpm, euler
from diffusion_lab.schedules import linear_schedule


def test_rows_depend_only_on_seed_and_index():
    full = PerSampleNoise(7, range(8))
    parts = [PerSampleNoise(7, [0, 1, 2, 3]), PerSampleNoise(7, torch.tensor([4, 5, 6, 7]))]
    like = torch.empty(8, 3, 4)
    for _ in range(3):  # successive draws continue each stream
        a = full(like)
        b = torch.cat([p(like[:4]) for p in parts])
        assert torch.equal(a, b)
    shuffled = PerSampleNoise(7, [5, 2])(torch.empty(2, 3, 4))
    assert torch.equal(shuffled[0], PerSampleNoise(7, [5])(torch.empty(1, 3, 4))[0])


def test_streams_seeds_and_indices_differ():
    like = torch.empty(4, 16)
    base = PerSampleNoise(0, range(4))(like)
    assert not torch.equal(base, PerSampleNoise(1, range(4))(like))
    assert not torch.equal(base, PerSampleNoise(0, range(4), stream=1)(like))
    assert not torch.equal(base[0], base[1])
    assert len({mix_seed(0, 0, i) for i in range(10_000)}) == 10_000
    assert torch.equal(initial_noise((4, 16), seed=0), base)


def test_moments_dtype_device():
    z = PerSampleNoise(3, range(2000))(torch.empty(2000, 50, dtype=torch.float64))
    assert z.dtype == torch.float64
    assert abs(z.mean().item()) < 0.005 and abs(z.var().item() - 1) < 0.01
    with pytest.raises(ValueError):
        PerSampleNoise(0, range(3))(torch.empty(4, 2))


@pytest.mark.parametrize(
    "solver", [euler, ddpm, functools.partial(ddim, eta=0.7)], ids=["euler", "ddpm", "ddim_eta0.7"]
)
@pytest.mark.parametrize("spacing", [UniformSpacing(), KarrasSpacing()], ids=["uniform", "karras"])
def test_batch_of_8_equals_two_batches_of_4(solver, spacing):
    sch = linear_schedule()
    oracle = GaussianOracle.random(dim=12, seed=0)
    den = VPDenoiser(oracle.backbone(sch, EpsPrediction()), sch, EpsPrediction())
    spec = SamplerSpec(solver, spacing, 10)
    shape = (8, 3, 4)  # (B, C, L): the oracle acts on the flattened 12 dims per sample
    flat = _Flatten(den)
    whole = spec.sample(flat, sch, shape, seed=11)
    halves = torch.cat(
        [
            spec.sample(flat, sch, (4, 3, 4), seed=11, indices=range(4)),
            spec.sample(flat, sch, (4, 3, 4), seed=11, indices=[4, 5, 6, 7]),
        ]
    )
    assert torch.equal(whole, halves)
    assert not torch.equal(whole, spec.sample(flat, sch, shape, seed=12))


def test_sampler_spec_noise_streams():
    """x_T comes from stream 0 and the step noise from the independent stream 1 of (seed, index)."""
    seen = {}

    def probe(denoiser, x, sigmas, *, cond=None, callback=None, noise=None):
        seen["x"], seen["z"] = x, noise(x)
        return x

    sch = linear_schedule()
    spec = SamplerSpec(probe, UniformSpacing(), 4)
    spec.sample(None, sch, (3, 5), seed=9, indices=[2, 7, 4])
    scale = (1 + sch.sigma_max**2) ** 0.5
    assert torch.equal(seen["x"], PerSampleNoise(9, [2, 7, 4], stream=0)(seen["x"]) * scale)
    assert torch.equal(seen["z"], PerSampleNoise(9, [2, 7, 4], stream=1)(seen["x"]))


class _Flatten:
    def __init__(self, denoiser):
        self.denoiser = denoiser

    def __call__(self, x, sigma, cond):
        return self.denoiser(x.flatten(1), sigma, cond).view_as(x)
