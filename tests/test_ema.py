"""EMA: the closed form of the warm-up average, one foreach update without host reads."""

from __future__ import annotations

import torch
from torch import nn

from diffusion_lab.lit.ema import EMA


def test_ema_follows_the_warmup_recursion_in_closed_form():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(net, decay=0.5, warmup=True)
    expected = [p.detach().clone().double() for p in net.parameters()]
    for k in range(15):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.add_(1.0)
        d = min(0.5, (1 + k) / (10 + k))  # warm-up (k < 8), then the cap
        expected = [d * e + (1 - d) * p.detach().double() for e, p in zip(expected, net.parameters())]
        ema.update(net)
    for e, p in zip(expected, ema.model.parameters()):
        torch.testing.assert_close(p.double(), e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ema.model[1].running_mean, net[1].running_mean)  # buffers copied
    assert int(ema.num_updates) == 15 and ema.current_decay() == 0.5


def test_ema_update_reads_nothing_back_from_the_device(monkeypatch):
    """No ``.item()``/``int()`` of a tensor during an update (on CUDA each would be a sync)."""
    net = nn.Linear(3, 3)
    ema = EMA(net, decay=0.99)
    reads = []
    for name in ("item", "__int__", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _o=original, _n=name: reads.append(_n) or _o(self, *a))
    ema.update(net)
    monkeypatch.undo()
    assert reads == []
