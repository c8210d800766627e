"""backbone.checkpointing=true: the same function and gradients (dropout included), less memory
held for backward."""

from __future__ import annotations

import pytest
import torch
from test_resume import one_thread  # noqa: F401

from diffusion_lab.backbones import DiT, UNet
from diffusion_lab.bench.timing import allocated_mib
from diffusion_lab.bench.training_step import call_ours, forward_memory_mib


def unet(**kw):
    return UNet(image_size=8, in_channels=1, base_channels=16, channel_mult=(1, 2),
                num_res_blocks=1, attention_resolutions=(4,), num_heads=2, groups=8,
                dropout=0.3, num_classes=10, **kw)


def dit(**kw):
    return DiT(image_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=2, num_heads=2,
               num_classes=10, **kw)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("make", [unet, dit], ids=["unet", "dit"])
def test_checkpointed_blocks_give_the_same_outputs_and_gradients(make):
    torch.manual_seed(0)
    plain = make()
    ckpt = make(checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    with torch.no_grad():  # non-zero everywhere, so every block's gradient is exercised
        for a, b in zip(plain.parameters(), ckpt.parameters()):
            noise = 0.05 * torch.randn_like(a)
            a.add_(noise), b.add_(noise)
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 7, 10])
    grads = []
    for net in (plain, ckpt):
        torch.manual_seed(1)  # the same dropout masks; recomputation must redraw them identically
        out = net(x, t, y)
        out.square().mean().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters() if p.requires_grad]))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for g_ckpt, g_plain in zip(grads[1][1], grads[0][1]):
        torch.testing.assert_close(g_ckpt, g_plain, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(allocated_mib(torch.device("cpu")) is None, reason="no glibc mallinfo2")
def test_checkpointing_holds_less_memory_for_backward():
    torch.manual_seed(0)
    x, t, y = torch.randn(64, 1, 8, 8), torch.randint(0, 1000, (64,)), torch.randint(0, 10, (64,))
    held = {flag: forward_memory_mib(unet(checkpointing=flag), call_ours, x, t, y, bf16=False)
            for flag in (False, True)}
    # without: every block's activations (~10 MiB here); with: the block inputs only
    assert held[False] > 4
    assert held[True] < 0.5 * held[False]


def test_checkpointing_must_be_a_flag(make_cfg):
    from diffusion_lab.tasks.errors import ConfigError
    from diffusion_lab.tasks.validate import validate_train_config

    with pytest.raises(ConfigError, match="checkpointing must be true or false, got 'sometimes'"):
        validate_train_config(make_cfg("backbone.checkpointing=sometimes"))
    with pytest.raises(TypeError, match="checkpointing must be true or false"):
        dit(checkpointing=1)
