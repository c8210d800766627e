"""Backbones: parameter counts against the papers, shapes, conditioning, init, errors."""

from __future__ import annotations

import pytest
import torch

from diffusion_lab.backbones import MLP, DiT, UNet, timestep_embedding
from diffusion_lab.backbones.layers import AttentionBlock2d
from diffusion_lab.tasks.build import backbone_preset


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_unet(num_classes: int = 0, **kw) -> UNet:
    cfg = {"image_size": 8, "in_channels": 3, "base_channels": 16, "channel_mult": (1, 2),
           "num_res_blocks": 1, "attention_resolutions": (4,), "num_heads": 2, "dropout": 0.0,
           "num_classes": num_classes, "groups": 8}
    return UNet(**{**cfg, **kw})


def small_dit(num_classes: int = 0, **kw) -> DiT:
    cfg = {"image_size": 8, "patch_size": 2, "in_channels": 3, "hidden_size": 32, "depth": 2,
           "num_heads": 4, "num_classes": num_classes}
    return DiT(**{**cfg, **kw})


def small_mlp(num_classes: int = 0, **kw) -> MLP:
    cfg = {"dim": 2, "hidden": 32, "depth": 2, "time_embed_dim": 16, "num_classes": num_classes}
    return MLP(**{**cfg, **kw})


FACTORIES = {"unet": small_unet, "dit": small_dit, "mlp": small_mlp}


def inputs(name: str, batch: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 2) if name == "mlp" else (batch, 3, 8, 8)
    return torch.randn(shape, generator=g), torch.rand(batch, generator=g) * 1000


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Add noise to every trainable weight so zero-initialised layers stop hiding the rest."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


# ---------------------------------------------------------------- parameter counts

def test_unet_ddpm_cifar10_parameter_count():
    with torch.device("meta"):
        model = backbone_preset("unet_ddpm_cifar10", image_size=32, channels=3)
    n = n_params(model)
    ref = 35_746_307  # diffusers UNet2DModel, google/ddpm-cifar10-32; paper: 35.7M
    assert abs(n - ref) / ref < 0.01, f"DDPM CIFAR-10 U-Net has {n:,} parameters, want ~{ref:,}"
    assert sum(isinstance(m, AttentionBlock2d) for m in model.modules()) == 6, \
        "attention expected at 16x16: 2 down + 1 middle + 3 up"


@pytest.mark.parametrize("preset, expected", [
    ("dit_s_2", 32_963_360), ("dit_b_2", 130_512_416), ("dit_xl_2", 675_129_632),
])
def test_dit_parameter_count_matches_paper(preset, expected):
    # the paper's models on 32x32x4 latents of ImageNet, predicting eps and a variance
    with torch.device("meta"):
        model = backbone_preset(preset, image_size=32, channels=4, num_classes=1000,
                                out_channels=8)
    n = n_params(model)
    assert n == expected, f"{preset}: {n:,} parameters, want {expected:,}"
    assert not model.pos_embed.requires_grad


# ---------------------------------------------------------------- shapes and conditioning

@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("num_classes", [0, 5])
def test_output_shape_matches_input(name, num_classes):
    model = FACTORIES[name](num_classes=num_classes).eval()
    x, t = inputs(name)
    cond = torch.tensor([0, 1, 2, 4]) if num_classes else None
    with torch.no_grad():
        out = model(x, t, cond)
    assert out.shape == x.shape
    assert model.in_channels == (2 if name == "mlp" else 3)


@pytest.mark.parametrize("kw", [{"scale_shift_norm": False}, {"resblock_updown": True},
                                {"head_channels": 8, "out_channels": 5}])
def test_unet_variants_shape(kw):
    model = perturbed(small_unet(channel_mult=(1, 2, 2), **kw))
    x, t = inputs("unet")
    with torch.no_grad():
        out = model(x, t)
    assert out.shape == (4, kw.get("out_channels", 3), 8, 8)


def test_dit_out_channels_sets_the_output_channels():
    model = small_dit(out_channels=6)
    x, t = inputs("dit")
    assert model(x, t).shape == (4, 6, 8, 8)


@pytest.mark.parametrize("name", FACTORIES)
def test_cond_none_is_null_class_and_class_matters(name):
    model = perturbed(FACTORIES[name](num_classes=5))
    x, t = inputs(name)
    with torch.no_grad():
        out_none = model(x, t, None)
        out_null = model(x, t, torch.full((4,), 5))
        out_zero = model(x, t, torch.zeros(4, dtype=torch.long))
        out_one = model(x, t, torch.ones(4, dtype=torch.long))
    torch.testing.assert_close(out_none, out_null, rtol=0, atol=0)
    assert not torch.allclose(out_zero, out_null, atol=1e-4)
    assert not torch.allclose(out_zero, out_one, atol=1e-4)


@pytest.mark.parametrize("name", FACTORIES)
def test_time_embedding_matters(name):
    model = perturbed(FACTORIES[name]())
    x, _ = inputs(name)
    with torch.no_grad():
        a = model(x, torch.full((4,), 10.0))
        b = model(x, torch.full((4,), 500.0))
        c = model(x, torch.full((4,), 10.5))  # continuous values are embedded too
    assert not torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-6)


def test_timestep_embedding_values():
    t = torch.tensor([0.0, 3.5])
    emb = timestep_embedding(t, 9)
    assert emb.shape == (2, 9) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 5))
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1, :4], (3.5 * freqs).cos())
    torch.testing.assert_close(emb[1, 4:8], (3.5 * freqs).sin())


def test_unet_channels_last_matches_contiguous():
    model = perturbed(small_unet())
    x, t = inputs("unet")
    with torch.no_grad():
        ref = model(x, t)
        out = model.to(memory_format=torch.channels_last)(
            x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- initialisation

def test_fresh_dit_outputs_zero_and_blocks_are_identity():
    model = small_dit(num_classes=5).eval()
    x, t = inputs("dit")
    with torch.no_grad():
        assert torch.equal(model(x, t, torch.arange(4)), torch.zeros_like(x))
        h = torch.randn(4, 16, 32)
        c = torch.randn(4, 32)
        for block in model.blocks:  # adaLN-Zero: every gate starts at zero
            assert torch.equal(block(h, c), h)


def test_fresh_unet_outputs_zero_and_resblocks_start_as_skip():
    model = small_unet().eval()
    x, t = inputs("unet")
    with torch.no_grad():
        assert torch.equal(model(x, t), torch.zeros_like(x))
    assert all(not b.out_conv.weight.any() for b in model.modules()
               if type(b).__name__ == "ResBlock")


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("build, match", [
    (lambda: UNet(image_size=30, channel_mult=(1, 2, 2, 2)), "divisible by 2\\*\\*"),
    (lambda: small_unet(groups=5), "groups=5"),
    (lambda: small_unet(attention_resolutions=(16,)), "attention_resolutions"),
    (lambda: small_unet(num_heads=3), "num_heads=3"),
    (lambda: DiT(image_size=30, patch_size=4, depth=1), "patch_size=4"),
    (lambda: small_dit(num_heads=5), "num_heads=5"),
])
def test_impossible_shapes_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match) as info:
        build()
    assert "\n" not in str(info.value)


def test_dit_rejects_wrong_input_size():
    model = small_dit()
    with pytest.raises(ValueError, match="expected 8x8"):
        model(torch.randn(1, 3, 16, 16), torch.zeros(1))


# ---------------------------------------------------------------- backward

FIRST_LAYER = {"unet": "input_conv.weight", "dit": "patch_embed.weight", "mlp": "input.weight"}


@pytest.mark.parametrize("name", FACTORIES)
def test_backward_reaches_first_layer_and_time_mlp(name):
    model = perturbed(FACTORIES[name](num_classes=5)).train()
    x, t = inputs(name)
    model(x, t, torch.tensor([0, 1, 5, 2])).square().mean().backward()
    grads = dict(model.named_parameters())
    for key in (FIRST_LAYER[name], "time_embed.mlp.0.weight", "class_embed.table.weight"):
        g = grads[key].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, key
    missing = [k for k, p in grads.items() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"
