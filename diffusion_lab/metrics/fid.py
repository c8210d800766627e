r"""Fréchet and kernel distances between feature distributions (FID / KID).

FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule ...") fits a
Gaussian to the features of each image set and reports the squared Fréchet (2-Wasserstein)
distance between the two Gaussians

    d^2 = ||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^{1/2}).

KID (Bińkowski et al. 2018, "Demystifying MMD GANs") is the unbiased MMD^2 with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.

Source of truth: :func:`frechet_distance` below. :class:`FidKid` / :func:`compute_fid_kid`
run torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` (which compute
tr((C1 C2)^{1/2}) by a different method); the tests check both agree. Both take images in
[-1, 1] and any feature module (``ClassifierFeatures``, ``inception_features()``); every
number they report comes with the sample counts it was computed from.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffusion_lab.utils.progress import progress_bar


@dataclass(frozen=True)
class FeatureStats:
    """Mean (F,), unbiased covariance (F, F), both float64, and the sample count."""

    mean: Tensor
    cov: Tensor
    count: int

    @classmethod
    def from_features(cls, features: Tensor) -> FeatureStats:
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need features shaped (N >= 2, F), got {tuple(features.shape)}")
        f = features.detach().to("cpu", torch.float64)
        mean = f.mean(dim=0)
        centred = f - mean
        cov = centred.T @ centred / (f.shape[0] - 1)
        return cls(mean=mean, cov=cov, count=int(f.shape[0]))

    def to_dict(self) -> dict:
        return {"mean": self.mean, "cov": self.cov, "count": self.count}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureStats:
        mean, cov, count = d["mean"], d["cov"], int(d["count"])
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]) or count < 2:
            raise ValueError("inconsistent FeatureStats payload")
        return cls(mean=mean.to(torch.float64), cov=cov.to(torch.float64), count=count)


def _psd_sqrt(c: Tensor) -> Tensor:
    """Symmetric square root of a PSD matrix; round-off negative eigenvalues clamped to 0."""
    w, v = torch.linalg.eigh(c)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    r"""Exact squared Fréchet distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    tr((C1 C2)^{1/2}) is computed as sum_i sqrt(lambda_i(M)) with M = C1^{1/2} C2 C1^{1/2}:
    C1 C2 = C1^{1/2} (C1^{1/2} C2) has the same eigenvalues as (C1^{1/2} C2) C1^{1/2} = M,
    and M is symmetric PSD, so a symmetric eigensolver gives real, non-negative eigenvalues
    (backward stable; singular covariances are fine). The alternative, complex
    ``eigvals(C1 @ C2)`` (torchmetrics, tested against this), works on a non-symmetric
    matrix and needs the spurious imaginary parts thrown away. The result is clamped at 0
    (it is >= 0 mathematically; only round-off can make it negative).
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).cpu() for m in (mu1, mu2))
    cov1, cov2 = (torch.as_tensor(c, dtype=torch.float64).cpu() for c in (cov1, cov2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, "
                         f"cov {tuple(cov1.shape)}/{tuple(cov2.shape)}")
    cov1, cov2 = (cov1 + cov1.T) / 2, (cov2 + cov2.T) / 2
    s1 = _psd_sqrt(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    value = diff @ diff + cov1.trace() + cov2.trace() - 2 * tr_sqrt
    return max(float(value), 0.0)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """:func:`frechet_distance` between two :class:`FeatureStats` (e.g. cached reference)."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def bootstrap_fid_sd(features: Tensor, reference: FeatureStats, draws: int = 100,
                     seed: int = 0) -> float:
    """Standard deviation of the FID over ``draws`` bootstrap resamples of the sample
    features (n rows drawn with replacement from the n given) against the fixed ``reference``:
    the bootstrap estimate of how far another draw of n samples from the same model would
    move this FID (the sampling noise a comparison at n samples has to beat)."""
    f = features.detach().to("cpu", torch.float64)
    n = f.shape[0]
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor([
        fid_from_stats(FeatureStats.from_features(f[torch.randint(n, (n,), generator=g)]),
                       reference)
        for _ in range(draws)
    ], dtype=torch.float64)
    return float(values.std())


def _device_of(module: nn.Module) -> torch.device:
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def iter_features(feature_module: nn.Module, images: Tensor | Iterable[Tensor],
                  batch_size: int = 256) -> Iterable[Tensor]:
    """Yield (b, F) float64 CPU features for ``images``: one (N, C, H, W) tensor in [-1, 1],
    or any iterable of such batches (e.g. a sampler producing images on the fly)."""
    batches = images.split(batch_size) if isinstance(images, Tensor) else images
    device = _device_of(feature_module)
    for batch in batches:
        with torch.no_grad():  # not around the yield: that would leak no_grad to the caller
            feats = feature_module(batch.to(device)).to("cpu", torch.float64)
        yield feats


def extract_features(feature_module: nn.Module, images: Tensor | Iterable[Tensor],
                     batch_size: int = 256, progress: str | None = None) -> Tensor:
    """All features of ``images`` as one (N, F) float64 CPU tensor; ``progress``: a progress
    bar's description (for a tensor of images), or None."""
    total = len(images) if isinstance(images, Tensor) else 0
    out = []
    with progress_bar(progress, total) as advance:
        for feats in iter_features(feature_module, images, batch_size):
            out.append(feats)
            advance(len(feats))
    return torch.cat(out)


def stats_from_images(feature_module: nn.Module, images: Tensor | Iterable[Tensor],
                      batch_size: int = 256, progress: str | None = None) -> FeatureStats:
    """:class:`FeatureStats` of the features of ``images`` (e.g. for the reference cache)."""
    return FeatureStats.from_features(extract_features(feature_module, images, batch_size, progress))


class _Precomputed(nn.Module):
    """Identity 'feature extractor' handed to torchmetrics: features are computed once by
    us and fed to both metrics, instead of each metric running the extractor again."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class FidKid:
    """FID and KID of several fake sets against one real set (real features kept).

    Wraps torchmetrics 1.9 ``FrechetInceptionDistance`` and ``KernelInceptionDistance``,
    both built with ``reset_real_features=False`` so ``reset()`` between evaluations drops
    only the fake features. ``evaluate`` is deterministic given ``seed`` (KID subsets are
    drawn with torch's global RNG, which is forked and seeded here, then restored).
    """

    def __init__(self, feature_module: nn.Module, *, kid_subset_size: int = 1000,
                 kid_subsets: int = 100, batch_size: int = 256, seed: int = 0) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        num_features = getattr(feature_module, "num_features", None)
        if not isinstance(num_features, int):
            raise TypeError("feature_module needs an int `num_features` attribute")
        if kid_subset_size < 2 or kid_subsets < 1:
            raise ValueError("need kid_subset_size >= 2 and kid_subsets >= 1")
        self.feature_module, self.batch_size, self.seed = feature_module, batch_size, seed
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets
        self.fid = FrechetInceptionDistance(feature=_Precomputed(num_features),
                                            reset_real_features=False, normalize=True)
        with warnings.catch_warnings():  # "KID stores all features in a buffer": we know
            warnings.simplefilter("ignore", UserWarning)
            self.kid = KernelInceptionDistance(feature=_Precomputed(num_features),
                                               subsets=kid_subsets, subset_size=kid_subset_size,
                                               reset_real_features=False, normalize=True)
        self.num_real = 0

    def _update(self, images: Tensor | Iterable[Tensor], real: bool) -> int:
        n = 0
        for feats in iter_features(self.feature_module, images, self.batch_size):
            self.fid.update(feats, real=real)
            self.kid.update(feats, real=real)
            n += feats.shape[0]
        return n

    def add_real(self, images: Tensor | Iterable[Tensor]) -> FidKid:
        self.num_real += self._update(images, real=True)
        return self

    def evaluate(self, fake_images: Tensor | Iterable[Tensor]) -> dict[str, float | int]:
        """FID, KID mean/std of ``fake_images`` against the real images added so far."""
        self.fid.reset()
        self.kid.reset()
        num_fake = self._update(fake_images, real=False)
        if self.num_real < 2 or num_fake < 2:
            raise ValueError(f"need >= 2 real and fake images, got {self.num_real}/{num_fake}")
        subset = min(self.kid_subset_size, self.num_real, num_fake)
        self.kid.subset_size = subset  # plain attribute, read only in compute()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = self.kid.compute()
        return {
            "fid": float(self.fid.compute()),
            "kid_mean": float(kid_mean),
            "kid_std": float(kid_std),
            "num_real": self.num_real,
            "num_fake": num_fake,
            "kid_subset_size": subset,
            "kid_subsets": self.kid_subsets,
        }


def kid_from_features(real: Tensor, fake: Tensor, *, subset_size: int = 1000,
                      subsets: int = 100, seed: int = 0) -> dict[str, float | int]:
    """KID (Binkowski et al. 2018) of features already extracted, (N, F) each: the unbiased
    MMD^2 between real and fake features under the cubic kernel k(a, b) = (a . b / F + 1)^3,
    averaged over ``subsets`` random subsets of ``min(subset_size, N_real, N_fake)`` of each
    side (seeded; torchmetrics' estimator). Unlike FID it has no bias in the sample count, so
    small evaluations compare fairly; 0 in expectation for two draws of one law, and it can come
    out below 0. Returns ``kid``, ``kid_std`` (over the subsets) and ``kid_subset_size``."""
    metric = FidKid(_Precomputed(real.shape[1]), kid_subset_size=subset_size,
                    kid_subsets=subsets, seed=seed)
    result = metric.add_real(real).evaluate(fake)
    return {"kid": result["kid_mean"], "kid_std": result["kid_std"],
            "kid_subset_size": result["kid_subset_size"]}


def compute_fid_kid(feature_module: nn.Module, real_images: Tensor | Iterable[Tensor],
                    fake_images: Tensor | Iterable[Tensor], *, kid_subset_size: int = 1000,
                    kid_subsets: int = 100, batch_size: int = 256,
                    seed: int = 0) -> dict[str, float | int]:
    """One-shot :class:`FidKid`: ``dict(fid, kid_mean, kid_std, num_real, num_fake,
    kid_subset_size, kid_subsets)``. ``kid_subset_size`` is capped at the smaller set size
    (the value used is reported)."""
    metric = FidKid(feature_module, kid_subset_size=kid_subset_size, kid_subsets=kid_subsets,
                    batch_size=batch_size, seed=seed)
    return metric.add_real(real_images).evaluate(fake_images)
