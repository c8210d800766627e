"""Feature extractors for FID / KID: images in [-1, 1] -> (B, F) features.

Both extractors are ``nn.Module``s with an ``int`` ``num_features`` (what torchmetrics reads
instead of probing the module with a dummy image) and an ``identity`` string (what the
reference-stats cache is keyed by). They never leave eval mode.

* :class:`ClassifierFeatures`: penultimate features of the project's own small classifier
  (works offline, at any resolution, for any channel count). Numbers are only comparable
  between runs that use the *same* classifier weights (``identity`` carries their hash).
* :func:`inception_features`: the standard FID Inception-v3 (pool3, 2048-d) from
  torch-fidelity via torchmetrics; needs ``pip install 'diffusion-lab[inception]'`` and the
  weights file (downloaded once, or given as ``weights_path`` on offline machines).
"""

from __future__ import annotations

import hashlib
import os

import torch
from torch import Tensor, nn

INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         "weights-inception-2015-12-05-6726825d.pth")


def state_digest(module: nn.Module, length: int = 12) -> str:
    """Short sha256 of a module's parameters and buffers (an identity for caches)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:length]


class _Frozen(nn.Module):
    """Base: parameters frozen, always in eval mode (``.train()`` is a no-op), so a
    torchmetrics ``Metric`` or a LightningModule that owns it cannot flip BatchNorm/dropout."""

    def train(self, mode: bool = True) -> _Frozen:
        return super().train(False)

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected float images (B, C, H, W) in [-1, 1], got "
                         f"{tuple(x.shape)} {x.dtype}")


class ClassifierFeatures(_Frozen):
    """Penultimate features of a trained :class:`SmallClassifier` (or any model with
    ``features(x) -> (B, F)`` and ``feature_dim``), as float32 (B, F)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_features = int(model.feature_dim)
        self.identity = f"classifier-{state_digest(model)}"
        self._freeze()

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x)
        return self.model.features(x).float()  # (B, F)


def to_uint8_rgb(x: Tensor) -> Tensor:
    """[-1, 1] float (B, C, H, W), C in {1, 3} -> uint8 (B, 3, H, W) in 0..255 (gray
    replicated), the input the torch-fidelity Inception expects."""
    _check_images(x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"Inception needs 1- or 3-channel images, got {x.shape[1]} channels")
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFeatures(_Frozen):
    """Inception-v3 pool3 features (B, 2048) float32 from images in [-1, 1]."""

    num_features = 2048

    def __init__(self, net: nn.Module, identity: str) -> None:
        super().__init__()
        self.net = net
        self.identity = identity
        self._freeze()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(to_uint8_rgb(x)).float()  # resized to 299x299 inside the net


def inception_features(weights_path: str | os.PathLike | None = None, *,
                       antialias: bool = False) -> InceptionFeatures:
    """Build the standard FID Inception-v3 extractor (torch-fidelity's
    ``inception-v3-compat``, 2048-d) through torchmetrics' ``NoTrainInceptionV3``.

    ``weights_path``: a local copy of ``weights-inception-2015-12-05-6726825d.pth`` for
    machines without internet (otherwise it is downloaded to / read from the torch hub
    cache). ``antialias=False`` keeps torch-fidelity's TF1-compatible resize, the one
    published FIDs use (torchmetrics defaults to True; it differs only when downsampling).
    """
    try:
        import torch_fidelity  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as err:
        raise RuntimeError("Inception features need torch-fidelity and torchvision: "
                           "pip install 'diffusion-lab[inception]'") from err
    from torchmetrics.image.fid import NoTrainInceptionV3

    if weights_path is not None and not os.path.isfile(weights_path):
        raise FileNotFoundError(f"Inception weights_path {weights_path} is not a file")
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=None if weights_path is None
                                 else str(weights_path), antialias=antialias)
    except Exception as err:  # urllib / OSError / hub errors all mean the same here
        if weights_path is None:
            raise RuntimeError(
                f"could not download the FID Inception weights ({type(err).__name__}: {err}); "
                f"on an offline machine fetch {INCEPTION_WEIGHTS_URL} elsewhere and pass "
                "weights_path=... (or place it in the torch hub checkpoints cache)") from err
        raise
    return InceptionFeatures(net, identity=f"inception-v3-compat-2048-aa{int(antialias)}")
