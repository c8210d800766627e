"""The measured work: the models, one optimizer step of the eps loss over fixed inputs, and a
guided sampling evaluation, with the figures each gives (img/s, GFLOP/s, memory)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab.backbones import UNet
from diffusion_lab.bench.timing import (
    allocated_mib,
    count_flops,
    interleaved_median_seconds,
    median_seconds,
    significant,
)
from diffusion_lab.guidance import classifier_free
from diffusion_lab.parametrization import EpsPrediction
from diffusion_lab.precond import VPDenoiser
from diffusion_lab.schedules import cosine_schedule
from diffusion_lab.tasks.build import backbone_preset


def _preset(name: str, image_size: int, channels: int, **kw):
    return lambda **o: backbone_preset(name, image_size=image_size, channels=channels, **{**kw, **o})


def _unet(**fixed):
    return lambda **o: UNet(**{**fixed, **o})


MODELS = {
    # name: (constructor(**overrides), input shape (C, H, W), default batch)
    "unet_small": (_unet(image_size=8, in_channels=1, base_channels=32, channel_mult=(1, 2),
                         attention_resolutions=(4,), num_heads=4, groups=8, num_classes=10),
                   (1, 8, 8), 128),
    "unet_tiny": (_unet(image_size=8, in_channels=1, base_channels=16, channel_mult=(1, 2),
                        num_res_blocks=1, attention_resolutions=(4,), num_heads=1, groups=8,
                        dropout=0.0, scale_shift_norm=False),
                  (1, 8, 8), 32),
    # the 28x28 preset of experiment=mnist5k
    "unet_mnist": (_preset("unet_mnist", 28, 1, num_classes=10), (1, 28, 28), 64),
    "unet_ddpm_cifar10": (_preset("unet_ddpm_cifar10", 32, 3), (3, 32, 32), 8),
    # the paper's DiT-S/2 on 32x32x4 latents, predicting eps and a variance (8 channels)
    "dit_s_2": (_preset("dit_s_2", 32, 4, num_classes=1000, out_channels=8), (4, 32, 32), 8),
    "dit_b_2": (_preset("dit_b_2", 32, 4, num_classes=1000, out_channels=8), (4, 32, 32), 8),
    "dit_tiny": (_preset("dit_tiny", 8, 1, num_classes=10), (1, 8, 8), 32),
}


def call_ours(net, x, t, y):
    return net(x, t, y) if getattr(net, "num_classes", 0) else net(x, t)


class EpsOnly(torch.nn.Module):
    """The eps channels of a backbone that also predicts a variance (DiT-S/2 as in the paper)."""

    def __init__(self, net, channels: int) -> None:
        super().__init__()
        self.net, self.channels = net, channels

    def forward(self, x, t, cond=None):
        return self.net(x, t, cond)[:, : self.channels]


def train_step(net, call, x, t, y, eps, bf16: bool, fused: bool | None = None):
    """One optimizer step of the eps-prediction loss (MSE in fp32), closed over fixed inputs.
    ``fused``: AdamW's fused kernel (CUDA); otherwise its foreach default."""
    kwargs = {"fused": True} if fused else {}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, **kwargs)
    out_ch = x.shape[1]

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = call(net, x, t, y)
        loss = F.mse_loss(out[:, :out_ch].float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def inputs(shape, batch, device, channels_last=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (batch,), generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    eps = torch.randn(batch, *shape, generator=g).to(device)
    return x, t, y, eps


def forward_memory_mib(net, call, x, t, y, bf16: bool) -> float | None:
    """Memory allocated by one training forward and still held when it ends (the activations
    kept for backward, plus the output): CUDA's allocator statistics, glibc's on a CPU."""
    net.zero_grad(set_to_none=True)
    before = allocated_mib(x.device)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = call(net, x, t, y)
    after = allocated_mib(x.device)
    del out
    return None if before is None else round(after - before, 1)


def within(context, fn):
    """``fn`` run inside a fresh ``context()`` at every call (e.g. an attention-kernel choice
    that must hold for this step only, not for a step timed beside it)."""
    if context is None:
        return fn

    def wrapped():
        with context():
            return fn()

    return wrapped


def train_figures(net, call, shape, batch, device, args, bf16=False, channels_last=False,
                  fused=None, context=None, against=None) -> dict:
    """img/s, GFLOP/s and memory of a training step of ``net``. ``context``: a context-manager
    factory entered around every call. ``against``: a step to time in alternation with this one
    (``interleaved_median_seconds``), giving ``vs_baseline`` = its seconds / this step's."""
    x, t, y, eps = inputs(shape, batch, device, channels_last)
    # FLOPs and memory on the eager module: FlopCounterMode's global module hooks would fire
    # inside a compiled graph (and be traced into it), slowing every later call.
    eager = getattr(net, "_orig_mod", net)
    flops = count_flops(within(context, train_step(eager, call, x, t, y, eps, bf16, fused)))
    memory = within(context, lambda: forward_memory_mib(eager, call, x, t, y, bf16))()
    step = within(context, train_step(net, call, x, t, y, eps, bf16, fused))
    warmup = max(args.warmup, 2) if eager is not net else args.warmup  # compilation untimed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    fns = {"step": step} if against is None else {"step": step, "against": against}
    seconds = interleaved_median_seconds(fns, device, warmup, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    figures = {"train_img_per_s": significant(batch / seconds["step"]),
               "gflop_per_img": significant(flops / batch / 1e9),
               "gflop_per_s": significant(flops / seconds["step"] / 1e9), "forward_MiB": memory,
               "peak_mem_MiB": None if peak is None else round(peak, 1)}
    if against is not None:
        figures["vs_baseline"] = significant(seconds["against"] / seconds["step"])
    return figures


def sampling_img_per_nfe_s(net, shape, batch, device, args, bf16=False, two_forwards=False) -> float:
    """Guided (w=3) network evaluations: images per second per NFE."""
    x, _, y, _ = inputs(shape, batch, device)
    base = VPDenoiser(EpsOnly(net.eval(), shape[0]), cosine_schedule(), EpsPrediction())
    sigma = torch.full((batch,), 10.0, device=device)
    null = torch.full_like(y, net.num_classes)
    guided = classifier_free(base, 3.0, net.num_classes)

    @torch.no_grad()
    def nfe():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if two_forwards:
                d_c, d_u = base(x, sigma, y), base(x, sigma, null)
                return d_u + 3.0 * (d_c - d_u)
            return guided(x, sigma, y)

    seconds = median_seconds(nfe, device, args.warmup, args.repeats)
    net.train()
    return significant(batch / seconds)
