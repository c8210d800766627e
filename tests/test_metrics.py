"""Tests of diffusion_lab.metrics: exact FID, torchmetrics FID/KID, the project's digits
classifier, caches, and the optional Inception path. CPU only, nothing downloaded."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from diffusion_lab.metrics import (
    ClassifierFeatures,
    FeatureStats,
    FidKid,
    bootstrap_fid_sd,
    cached_reference_stats,
    class_histogram,
    classifier_accuracy,
    compute_fid_kid,
    confusion_matrix,
    extract_features,
    fid_from_stats,
    frechet_distance,
    inception_features,
    load_or_train_classifier,
    reference_stats_key,
    stats_from_images,
    to_uint8_rgb,
    train_classifier,
)
from diffusion_lab.metrics import cache as cache_mod
from diffusion_lab.metrics import classifier as clf_mod

NUM_CLASSES = 10
CLF_KW = {"epochs": 12, "width": 32, "seed": 0}  # ~2-5 s on one CPU thread


def _random_cov(d: int, gen: torch.Generator, rank: int | None = None) -> torch.Tensor:
    a = torch.randn(d, rank or d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + (0 if rank else 0.1) * torch.eye(d, dtype=torch.float64)


def _numpy_reference_fid(mu1, c1, mu2, c2) -> float:
    """Independent method: tr sqrt(C1 C2) from the complex eigenvalues of C1 C2."""
    mu1, c1, mu2, c2 = (np.asarray(t, dtype=np.float64) for t in (mu1, c1, mu2, c2))
    eig = np.linalg.eigvals(c1 @ c2).astype(np.complex128)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2)
                 - 2 * np.sqrt(eig).real.sum())


# ----------------------------------------------------------------------------- exact FID


def test_frechet_identical_gaussians_is_zero_and_mean_shift_is_exact():
    gen = torch.Generator().manual_seed(0)
    mu, cov = torch.randn(16, generator=gen, dtype=torch.float64), _random_cov(16, gen)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    shift = torch.randn(16, generator=gen, dtype=torch.float64)
    assert frechet_distance(mu, cov, mu + shift, cov) == pytest.approx(
        float(shift @ shift), rel=1e-9)


def test_frechet_diagonal_closed_form():
    gen = torch.Generator().manual_seed(1)
    mu1, mu2 = torch.randn(2, 32, generator=gen, dtype=torch.float64)
    s1, s2 = torch.rand(2, 32, generator=gen, dtype=torch.float64) * 3 + 0.01
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum()
    got = frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2))
    assert got == pytest.approx(float(expected), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("rank", [None, 5])  # full rank, and singular covariances
def test_frechet_full_covariance_matches_eigvals_reference(rank):
    gen = torch.Generator().manual_seed(2)
    d = 24
    mu1, mu2 = torch.randn(2, d, generator=gen, dtype=torch.float64)
    c1, c2 = _random_cov(d, gen, rank), _random_cov(d, gen, rank)
    got = frechet_distance(mu1, c1, mu2, c2)
    assert got == pytest.approx(_numpy_reference_fid(mu1, c1, mu2, c2), rel=1e-7)
    # swapping the two Gaussians gives the same distance (symmetric by definition)
    assert frechet_distance(mu2, c2, mu1, c1) == pytest.approx(got, rel=1e-9)


def test_bootstrap_fid_sd_matches_the_spread_over_independent_draws():
    """Gaussian features, n = 400 per draw, against the exact reference N(mu, I): the FID of
    200 independent draws spreads by some sd; the bootstrap sd of one draw estimates it (their
    mean over 5 draws within 25%; each one within a factor 1.6: the estimate is itself noisy,
    measured 0.83x-1.34x)."""
    dim, n = 6, 400
    g = torch.Generator().manual_seed(0)
    reference = FeatureStats(mean=torch.zeros(dim, dtype=torch.float64),
                             cov=torch.eye(dim, dtype=torch.float64), count=10**6)
    shift = torch.full((dim,), 0.15, dtype=torch.float64)  # a model slightly off the data

    def draw():
        return torch.randn(n, dim, generator=g, dtype=torch.float64) + shift

    fids = torch.tensor([fid_from_stats(FeatureStats.from_features(draw()), reference)
                         for _ in range(200)])
    true_sd = float(fids.std())
    estimates = [bootstrap_fid_sd(draw(), reference, seed=seed) for seed in range(5)]
    assert all(true_sd / 1.6 < e < 1.6 * true_sd for e in estimates), (estimates, true_sd)
    assert abs(sum(estimates) / 5 - true_sd) < 0.25 * true_sd, (estimates, true_sd)
    # more samples, less noise: the sd shrinks roughly as 1/sqrt(n)
    big = bootstrap_fid_sd(torch.randn(4 * n, dim, generator=g, dtype=torch.float64) + shift,
                           reference)
    assert big < 0.7 * true_sd


def test_frechet_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))


def test_feature_stats_match_numpy_and_round_trip():
    feats = torch.randn(50, 7, generator=torch.Generator().manual_seed(3)) * 2 + 1
    stats = FeatureStats.from_features(feats)
    assert stats.count == 50 and stats.mean.dtype == torch.float64
    np.testing.assert_allclose(stats.mean.numpy(), feats.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(feats.double().numpy().T), rtol=1e-10)
    back = FeatureStats.from_dict(stats.to_dict())
    assert torch.equal(back.cov, stats.cov) and back.count == 50
    with pytest.raises(ValueError):
        FeatureStats.from_features(feats[:1])


# ------------------------------------------------------------------- digits + classifier


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """On a shared 2-core box, 2 spinning intra-op threads run small ops several times
    slower than 1 (measured: 20 vs 120 ms per training step); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8 - 1  # (1797, 1, 8, 8)
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = perm[:400], perm[400:]
    halves = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    return {"x": x, "y": y, "x_train": x[train], "y_train": y[train], "x_test": x[test],
            "y_test": y[test], "real_a": x[halves[:898]], "real_b": x[halves[898:]]}


@pytest.fixture(scope="module")
def trained(digits):
    start = time.perf_counter()
    model = train_classifier(digits["x_train"], digits["y_train"], NUM_CLASSES, **CLF_KW)
    return model, time.perf_counter() - start


@pytest.fixture(scope="module")
def corrupted(digits):
    gen = torch.Generator().manual_seed(4)
    b = digits["real_b"]
    noise = torch.rand(b.shape, generator=gen) * 2 - 1
    blurred = F.avg_pool2d(F.pad(b, (1, 1, 1, 1), value=-1.0), 3, stride=1)
    shuffled = torch.stack([im.flatten()[torch.randperm(64, generator=gen)].view(1, 8, 8)
                            for im in b])  # same pixel values, structure destroyed
    return {"noise": noise, "blurred": blurred, "shuffled": shuffled}


def test_classifier_reaches_97_percent_held_out(digits, trained):
    model, seconds = trained
    acc = classifier_accuracy(model, digits["x_test"], digits["y_test"])
    print(f"digits classifier: held-out acc {acc:.4f} on {len(digits['y_test'])}, "
          f"trained in {seconds:.1f} s")
    assert acc >= 0.97
    assert seconds < 30


def test_classifier_on_noise_is_near_chance_and_histogram_counts(digits, trained, corrupted):
    model, _ = trained
    y_b = digits["y"][torch.randperm(len(digits["y"]), generator=torch.Generator()
                                     .manual_seed(1))[898:]]
    assert classifier_accuracy(model, corrupted["noise"], y_b) < 0.25
    hist = class_histogram(model, digits["x_test"], NUM_CLASSES)
    assert hist.shape == (NUM_CLASSES,) and int(hist.sum()) == len(digits["x_test"])
    true = torch.bincount(digits["y_test"], minlength=NUM_CLASSES)
    assert int((hist - true).abs().sum()) <= 2 * 0.03 * len(digits["x_test"])


def test_classifier_features_module(trained):
    model, _ = trained
    feats = ClassifierFeatures(model)
    feats.train()  # a Metric / LightningModule calling .train() must not unfreeze it
    assert not feats.training and not feats.model.training
    assert all(not p.requires_grad for p in feats.parameters())
    out = feats(torch.zeros(5, 1, 8, 8))
    assert out.shape == (5, feats.num_features) == (5, 128) and out.dtype == torch.float32
    assert feats.identity.startswith("classifier-")
    with pytest.raises(ValueError, match="float images"):
        feats(torch.zeros(5, 1, 8, 8, dtype=torch.uint8))


# -------------------------------------------------------------------- FID / KID on digits


def test_torchmetrics_fid_agrees_with_exact_frechet(digits, trained):
    feats = ClassifierFeatures(trained[0])
    a, b = digits["real_a"], digits["real_b"][:500]
    result = compute_fid_kid(feats, a, b, kid_subset_size=200, kid_subsets=10, batch_size=128)
    ours = fid_from_stats(stats_from_images(feats, a), stats_from_images(feats, b))
    assert result["fid"] == pytest.approx(ours, rel=1e-3)
    assert (result["num_real"], result["num_fake"]) == (898, 500)
    assert result["kid_subset_size"] == 200 and result["kid_subsets"] == 10


def test_fid_and_kid_separate_real_from_corrupted(digits, trained, corrupted):
    feats = ClassifierFeatures(trained[0])
    metric = FidKid(feats, kid_subset_size=300, kid_subsets=5).add_real(digits["real_a"])
    rr = metric.evaluate(digits["real_b"])
    bad = {name: metric.evaluate(imgs) for name, imgs in corrupted.items()}
    print(f"FID real-real {rr['fid']:.3f} (n={rr['num_real']}/{rr['num_fake']}), "
          + ", ".join(f"real-{k} {v['fid']:.2f}" for k, v in bad.items()))
    for name, res in bad.items():
        assert res["fid"] > 10 * rr["fid"], name
        assert res["kid_mean"] > 10 * abs(rr["kid_mean"]), name
    # real features were kept across evaluations: same as a fresh one-shot computation
    fresh = compute_fid_kid(feats, digits["real_a"], corrupted["noise"], kid_subset_size=300,
                            kid_subsets=5)
    assert fresh == pytest.approx(bad["noise"], rel=1e-9)
    # KID subsets are seeded, independent of (and not disturbing) the global RNG
    torch.manual_seed(123)
    again = metric.evaluate(corrupted["noise"])
    torch.manual_seed(456)
    state = torch.get_rng_state()
    assert metric.evaluate(corrupted["noise"]) == pytest.approx(again, rel=1e-12)
    assert torch.equal(torch.get_rng_state(), state)
    assert again == pytest.approx(bad["noise"], rel=1e-12)


def test_kid_of_extracted_features_is_the_kid_of_the_images(digits, trained, corrupted):
    """kid_from_features on features extracted once gives torchmetrics' KID of the images (same
    subsets, same seed); near 0 for two halves of the real data, far above for noise."""
    from diffusion_lab.metrics.fid import kid_from_features

    feats = ClassifierFeatures(trained[0])
    real, fake = extract_features(feats, digits["real_a"]), extract_features(feats, corrupted["noise"])
    by_images = compute_fid_kid(feats, digits["real_a"], corrupted["noise"], kid_subset_size=300,
                                kid_subsets=5)
    by_features = kid_from_features(real, fake, subset_size=300, subsets=5)
    assert by_features["kid"] == pytest.approx(by_images["kid_mean"], rel=1e-9)
    assert by_features["kid_std"] == pytest.approx(by_images["kid_std"], rel=1e-9)
    same = kid_from_features(real, extract_features(feats, digits["real_b"]), subset_size=300,
                             subsets=5)
    assert abs(same["kid"]) < 0.05 * by_features["kid"]


def test_kid_subset_size_capped_to_available_samples(digits, trained):
    feats = ClassifierFeatures(trained[0])
    res = compute_fid_kid(feats, digits["real_a"][:60], digits["real_b"][:40],
                          kid_subset_size=1000, kid_subsets=3)
    assert res["kid_subset_size"] == 40 and res["num_fake"] == 40


# --------------------------------------------------------------------------------- caches


def _small_train_set(digits):
    return digits["x_train"][:300], digits["y_train"][:300]


SMALL_KW = {"epochs": 1, "width": 8, "feature_dim": 16, "batch_size": 100, "seed": 3}


def test_train_classifier_is_deterministic_and_leaves_global_rng(digits):
    x, y = _small_train_set(digits)
    state = torch.get_rng_state()
    m1 = train_classifier(x, y, NUM_CLASSES, **SMALL_KW)
    assert torch.equal(torch.get_rng_state(), state)
    m2 = train_classifier(x, y, NUM_CLASSES, **SMALL_KW)
    m3 = train_classifier(x, y, NUM_CLASSES, **{**SMALL_KW, "seed": 4})
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    assert any(not torch.equal(v, m3.state_dict()[k]) for k, v in m1.state_dict().items())


def _counting_trainer(monkeypatch):
    calls = []
    real = clf_mod.train_classifier

    def counted(*args, **kw):
        calls.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(clf_mod, "train_classifier", counted)
    return calls


def test_load_or_train_classifier_trains_once(digits, tmp_path, monkeypatch):
    x, y = _small_train_set(digits)
    calls = _counting_trainer(monkeypatch)
    first = load_or_train_classifier(x, y, NUM_CLASSES, tmp_path, "digits-8px", **SMALL_KW)
    assert len(calls) == 1
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("classifier-digits-8px-")

    def must_not_train(*args, **kw):
        raise AssertionError("retrained although a cached classifier exists")

    monkeypatch.setattr(clf_mod, "train_classifier", must_not_train)
    second = load_or_train_classifier(x, y, NUM_CLASSES, tmp_path, "digits-8px", **SMALL_KW)
    assert not second.training
    for k, v in first.state_dict().items():
        assert torch.equal(v, second.state_dict()[k]), k
    # different hyper-parameters or data -> a different cache entry, hence training
    with pytest.raises(AssertionError, match="retrained"):
        load_or_train_classifier(x, y, NUM_CLASSES, tmp_path, "digits-8px",
                                 **{**SMALL_KW, "lr": 1e-3})
    with pytest.raises(AssertionError, match="retrained"):
        load_or_train_classifier(x[:-1], y[:-1], NUM_CLASSES, tmp_path, "digits-8px", **SMALL_KW)


def test_corrupt_classifier_cache_warns_and_retrains(digits, tmp_path, monkeypatch):
    x, y = _small_train_set(digits)
    calls = _counting_trainer(monkeypatch)
    first = load_or_train_classifier(x, y, NUM_CLASSES, tmp_path, "k", **SMALL_KW)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="unreadable classifier cache"):
        again = load_or_train_classifier(x, y, NUM_CLASSES, tmp_path, "k", **SMALL_KW)
    assert len(calls) == 2
    for k, v in first.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    # the file was rewritten (atomically: no temporary files left) and is valid again
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    load_or_train_classifier(x, y, NUM_CLASSES, tmp_path, "k", **SMALL_KW)
    assert len(calls) == 2


def test_cached_reference_stats(tmp_path):
    calls = []
    feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(5))

    def compute():
        calls.append(1)
        return FeatureStats.from_features(feats)

    key = reference_stats_key("digits", 8, "classifier-abc123")
    assert "digits" in key and "8" in key and "classifier-abc123" in key
    s1 = cached_reference_stats(tmp_path, key, compute)
    s2 = cached_reference_stats(tmp_path, key, compute)
    assert len(calls) == 1
    assert torch.equal(s1.mean, s2.mean) and torch.equal(s1.cov, s2.cov) and s2.count == 40
    assert fid_from_stats(s1, s2) == pytest.approx(0.0, abs=1e-9)
    other = reference_stats_key("digits", 8, "classifier-def456")
    cached_reference_stats(tmp_path, other, compute)
    assert len(calls) == 2  # another extractor identity is another entry
    (path,) = [p for p in tmp_path.iterdir() if p.name == cache_mod.cache_filename("stats", key)]
    path.write_bytes(path.read_bytes()[:20])  # truncated file
    with pytest.warns(RuntimeWarning, match="unreadable reference-stats cache"):
        s3 = cached_reference_stats(tmp_path, key, compute)
    assert len(calls) == 3 and torch.equal(s3.cov, s1.cov)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_extract_features_accepts_batch_iterables(digits, trained):
    feats = ClassifierFeatures(trained[0])
    x = digits["x_test"][:70]
    whole = extract_features(feats, x, batch_size=32)
    streamed = extract_features(feats, iter(x.split(25)))
    assert whole.shape == (70, 128) and whole.dtype == torch.float64
    torch.testing.assert_close(whole, streamed, rtol=1e-5, atol=1e-6)
    assert torch.is_grad_enabled()


# ---------------------------------------------------------------------- Inception (lazy)


def test_inception_features_explain_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import -> ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'diffusion-lab\[inception\]'"):
        inception_features()


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None,
                    reason="torch-fidelity is installed here")
def test_inception_features_missing_in_this_env():
    with pytest.raises(RuntimeError, match=r"diffusion-lab\[inception\]"):
        inception_features(weights_path="/nonexistent/weights.pth")


def test_to_uint8_rgb_for_inception():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    out = to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, :, 0, 0].tolist() == [0, 0, 0] and out[0, 2].flatten().tolist() == [
        0, 128, 255, 255]
    with pytest.raises(ValueError, match="1- or 3-channel"):
        to_uint8_rgb(torch.zeros(1, 2, 4, 4))


def test_metrics_package_imports_no_heavy_or_framework_modules():
    code = ("import sys, diffusion_lab.metrics; bad = [m for m in sys.modules if m.split('.')[0]"
            " in {'torchvision', 'torch_fidelity', 'lightning', 'pytorch_lightning', 'hydra',"
            " 'omegaconf'}]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_confusion_matrix_counts_drawn_class_against_seen_class(tmp_path):
    """A classifier that reads the class off the image (one-hot pixels): the matrix is exactly
    the (drawn, seen) pairs; its trace / N is the accuracy; save_confusion finds the worst
    class and writes the counts and a heatmap."""
    from diffusion_lab.tasks.evaluate import save_confusion

    k = 4
    seen = torch.tensor([0, 0, 1, 2, 1, 3, 3, 0, 2, 2])
    drawn = torch.tensor([0, 0, 1, 1, 1, 3, 2, 1, 2, 2])
    x = F.one_hot(seen, k).float().view(-1, 1, 1, k)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(k, k, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(k))  # logits = the one-hot pixels
    c = confusion_matrix(model, x, drawn, k)
    expected = torch.zeros(k, k, dtype=torch.long)
    for i, j in zip(drawn.tolist(), seen.tolist()):
        expected[i, j] += 1
    assert torch.equal(c, expected)
    assert c.trace().item() / len(x) == classifier_accuracy(model, x, drawn)
    out = save_confusion(c, tmp_path, 2.0)
    # class 1: 2 of 4 samples seen as 1; class 2: 2 of 3; classes 0, 3: all of theirs
    assert out == {"worst_class": 1, "worst_class_accuracy": 0.5}
    saved = json.loads((tmp_path / "eval_confusion_w2.json").read_text())
    assert saved["counts"] == expected.tolist()
    assert saved["per_class_accuracy"] == [1.0, 0.5, 2 / 3, 1.0]
    png = np.asarray(Image.open(tmp_path / "eval_confusion_w2.png"))
    assert png.ndim == 3 and png.shape[0] > 100 and png.std() > 10
