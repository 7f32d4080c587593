"""minigrad.data: the IDX reader, MNIST / Fashion-MNIST (search, download), DataLoader."""
import gzip
import hashlib
import http.client
import http.server
import os
import pathlib
import tempfile
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.data import (
    MNIST, ChecksumError, Compose, DataLoader, Dataset, DatasetNotFoundError, FashionMNIST,
    Flatten, IDXError, Lambda, Normalize, Subset, TensorDataset, ToFloat, default_collate,
    random_split, read_idx,
)
from minigrad.data import download as dl
from minigrad.data import mnist as mnist_module
from tests.idx_files import NAMES, idx_bytes, make_dataset_dir, write_idx


# ------------------------------------------------------------------------------------------
# IDX reader

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@given(dtype=st.sampled_from(IDX_DTYPES),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
       gz=st.booleans(), seed=st.integers(0, 2**16))
def test_read_idx_round_trip(dtype, shape, gz, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    with tempfile.TemporaryDirectory() as d:
        path = write_idx(pathlib.Path(d) / ("x.idx" + (".gz" if gz else "")), a)
        b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable and b.flags.c_contiguous


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw_named_gz = tmp_path / "raw.gz"
    raw_named_gz.write_bytes(idx_bytes(a))
    gz_named_raw = tmp_path / "gz-ubyte"
    gz_named_raw.write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(raw_named_gz), a)
    np.testing.assert_array_equal(read_idx(gz_named_raw), a)


def _write(tmp_path, name, data, gz):
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_bad_magic(tmp_path, gz):
    good = idx_bytes(np.zeros((2, 3), np.uint8))
    for bad, why in [(b"\x01" + good[1:], "not an IDX file"),
                     (good[:2] + b"\x07" + good[3:], "not an IDX file"),
                     (b"PK\x03\x04" + good[4:], "not an IDX file")]:
        path = _write(tmp_path, "bad-magic", bad, gz)
        with pytest.raises(IDXError, match=f"{path.name}.*{why}"):
            read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_truncated_and_overlong_payloads(tmp_path, gz):
    good = idx_bytes(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
    cases = [(good[:2], "truncated.*magic"),
             (good[:10], "truncated.*dimension sizes"),
             (good[:-1], r"truncated.*shape \(2, 3, 4\).*95 bytes"),
             (good[:16], r"truncated.*only 0 bytes"),
             (good + b"\x00", "trailing data")]
    for data, msg in cases:
        path = _write(tmp_path, "t10k-labels-idx1-ubyte", data, gz)
        with pytest.raises(IDXError, match=msg) as info:
            read_idx(path)
        assert str(path) in str(info.value)


def test_read_idx_rejects_broken_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))
    truncated = tmp_path / "cut.gz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(IDXError, match=f"{truncated}.*gzip stream is corrupt or truncated"):
        read_idx(truncated)
    flipped = bytearray(good)
    flipped[-6] ^= 0xFF  # inside the CRC32 / size trailer: decompresses, then fails the check
    crc = tmp_path / "crc.gz"
    crc.write_bytes(bytes(flipped))
    with pytest.raises(IDXError, match="crc.gz.*gzip stream is corrupt"):
        read_idx(crc)


def test_read_idx_expectations_and_missing_file(tmp_path):
    path = write_idx(tmp_path / "labels", np.arange(5, dtype=np.int32))
    with pytest.raises(IDXError, match="holds int32 data, expected uint8"):
        read_idx(path, expect_dtype=np.uint8)
    with pytest.raises(IDXError, match=r"1-d array of shape \(5,\), expected 3 dimensions"):
        read_idx(path, expect_ndim=3)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST from synthetic files


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No MINIGRAD_DATA, a private cache dir, and no mirror that could reach the network."""
    monkeypatch.delenv("MINIGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    return tmp_path


def test_mnist_loads_synthetic_files(isolated_env):
    arrays = make_dataset_dir(isolated_env / "data" / "mnist", n_train=30, n_test=12)
    train = MNIST(root=isolated_env / "data", download=False)
    test = MNIST(root=isolated_env / "data", train=False, download=False)
    for ds, (x, y) in ((train, arrays["train"]), (test, arrays["test"])):
        assert isinstance(ds.data, mg.Tensor) and ds.data.dtype == np.uint8
        assert ds.data.shape == x.shape and ds.targets.shape == y.shape
        assert ds.targets.dtype == np.int64
        np.testing.assert_array_equal(ds.data.numpy(), x)
        np.testing.assert_array_equal(ds.targets.numpy(), y)
        assert len(ds) == len(x)
        image, label = ds[3]
        np.testing.assert_array_equal(image, x[3])
        assert label == y[3] and isinstance(label, int)
    assert train.folder == str(isolated_env / "data" / "mnist")
    assert "MNIST(train, 30 images" in repr(train)
    # stored once: data/targets share memory with what the dataset serves
    assert np.shares_memory(train.data.numpy(), train._images)


def test_mnist_transform_to_float(isolated_env):
    arrays = make_dataset_dir(isolated_env / "mnist", n_train=10, n_test=4)
    ds = MNIST(root=isolated_env, download=False, transform=ToFloat(),
               target_transform=lambda y: y + 100)
    image, label = ds[2]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], arrays["train"][0][2] / 255.0, rtol=1e-6)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert label == arrays["train"][1][2] + 100
    xb, yb = ds.get_batch(np.array([2, 0]))
    np.testing.assert_array_equal(xb[0], image)
    np.testing.assert_array_equal(yb, arrays["train"][1][[2, 0]] + 100)


def test_transforms_batch_equals_per_example():
    rng = np.random.default_rng(0)
    xb = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    pipeline = Compose([ToFloat(), Normalize(0.1307, 0.3081), Flatten()])
    batched = pipeline.apply_batch(xb)
    assert batched.shape == (5, 784) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, np.stack([pipeline(x) for x in xb]), rtol=1e-6)
    np.testing.assert_allclose(batched, ((xb / 255.0 - 0.1307) / 0.3081).reshape(5, -1),
                               rtol=1e-5, atol=1e-6)
    slow = Lambda(lambda x: x.astype(np.float64).sum().reshape(1))
    np.testing.assert_array_equal(slow.apply_batch(xb), xb.reshape(5, -1).sum(1, keepdims=True))
    assert ToFloat(channel=False)(xb[0]).shape == (28, 28)
    with pytest.raises(ValueError, match="std must be nonzero"):
        Normalize(0.5, 0)


def test_search_order_root_env_cache(isolated_env, monkeypatch):
    make_dataset_dir(isolated_env / "root" / "mnist", n_train=11, n_test=3, seed=1)
    make_dataset_dir(isolated_env / "env", n_train=12, n_test=3, seed=2)  # directly in $MINIGRAD_DATA
    make_dataset_dir(isolated_env / "cache" / "minigrad" / "mnist", n_train=13, n_test=3,
                     gz=False, seed=3)
    monkeypatch.setenv("MINIGRAD_DATA", str(isolated_env / "env"))
    assert len(MNIST(root=isolated_env / "root", download=False)) == 11
    assert len(MNIST(root=isolated_env / "elsewhere", download=False)) == 12
    monkeypatch.delenv("MINIGRAD_DATA")
    cached = MNIST(download=False)
    assert len(cached) == 13 and cached.folder.endswith(os.path.join("minigrad", "mnist"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated_env / "nocache"))
    monkeypatch.setenv("HOME", str(isolated_env / "home"))
    assert dl.cache_dir() == isolated_env / "nocache" / "minigrad"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dl.cache_dir() == isolated_env / "home" / ".cache" / "minigrad"


def test_raw_file_preferred_over_gz(isolated_env):
    folder = isolated_env / "mnist"
    make_dataset_dir(folder, n_train=10, n_test=3, gz=True, seed=0)
    raw = make_dataset_dir(folder, n_train=7, n_test=3, gz=False, seed=5)
    ds = MNIST(root=isolated_env, download=False)
    np.testing.assert_array_equal(ds.data.numpy(), raw["train"][0])


def test_not_found_message_lists_every_place_and_file(isolated_env):
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root=isolated_env / "r", download=False)
    msg = str(info.value)
    for place in [isolated_env / "r" / "mnist", isolated_env / "r",
                  isolated_env / "cache" / "minigrad" / "mnist", isolated_env / "cache" / "minigrad"]:
        assert f"  {place}\n" in msg
    for name in ["train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]",
                 "t10k-images-idx3-ubyte.gz", "MINIGRAD_DATA", "download=False"]:
        assert name in msg
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, RuntimeError)
    with pytest.raises(DatasetNotFoundError, match="fashion-mnist"):
        FashionMNIST(root=isolated_env / "r", train=False, download=False)


def test_inconsistent_files_are_rejected(isolated_env):
    folder = isolated_env / "mnist"
    make_dataset_dir(folder, n_train=10, n_test=3)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(IDXError, match="holds 10 images but .*train-labels.* holds 9 labels"):
        MNIST(root=isolated_env, download=False)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(10, 10, np.uint8))
    with pytest.raises(IDXError, match="label 10 is out of range for 10 classes"):
        MNIST(root=isolated_env, download=False)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(IDXError, match=r"t10k-images.*images of shape \(32, 32\), expected \(28, 28\)"):
        MNIST(root=isolated_env, train=False, download=False)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.float32))
    with pytest.raises(IDXError, match="t10k-images.*holds float32 data, expected uint8"):
        MNIST(root=isolated_env, train=False, download=False)


def test_fashion_mnist_uses_its_own_folder_and_classes(isolated_env):
    make_dataset_dir(isolated_env / "mnist", n_train=10, n_test=3, seed=0)
    fashion = make_dataset_dir(isolated_env / "fashion-mnist", n_train=8, n_test=3, seed=7)
    ds = FashionMNIST(root=isolated_env, download=False)
    np.testing.assert_array_equal(ds.data.numpy(), fashion["train"][0])
    assert ds.classes[9] == "Ankle boot" and len(ds.classes) == 10
    assert FashionMNIST.resources["train-images-idx3-ubyte.gz"][0] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"


def test_files_directly_in_root_of_another_dataset_are_skipped(isolated_env, monkeypatch):
    make_dataset_dir(isolated_env, n_train=10, n_test=3)  # directly in root, MNIST-named
    digest = dl.md5sum(isolated_env / "train-images-idx3-ubyte.gz")
    size = os.path.getsize(isolated_env / "train-images-idx3-ubyte.gz")
    assert len(MNIST(root=isolated_env, download=False)) == 10  # unknown files: accepted
    # pretend those are the real MNIST files: Fashion-MNIST must not take them
    monkeypatch.setattr(mnist_module, "_KNOWN_GZ_MD5", {digest})
    monkeypatch.setattr(mnist_module, "_OTHER_SIZES", {"FashionMNIST": {size}, "MNIST": set()})
    with pytest.raises(DatasetNotFoundError, match="belong to another dataset"):
        FashionMNIST(root=isolated_env, download=False)
    assert len(MNIST(root=isolated_env, download=False)) == 10


# ------------------------------------------------------------------------------------------
# Downloading (from a local HTTP server only)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving the folder it returns (as base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a, **k: _QuietHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served
    server.shutdown()
    server.server_close()


def _resources_for(folder):
    return {p.name: (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_size)
            for p in pathlib.Path(folder).glob("*.gz")}


def _leftovers(folder):
    folder = pathlib.Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_download_from_local_mirror(isolated_env, http_root, monkeypatch):
    url, served = http_root
    arrays = make_dataset_dir(served, n_train=20, n_test=5)
    monkeypatch.setattr(MNIST, "resources", _resources_for(served))
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/", url])  # first one refuses
    root = isolated_env / "data"
    ds = MNIST(root=root, train=True, download=True)
    np.testing.assert_array_equal(ds.data.numpy(), arrays["train"][0])
    assert _leftovers(root) == ["mnist/" + n + ".gz" for n in sorted(NAMES["train"])]
    test = MNIST(root=root, train=False)
    np.testing.assert_array_equal(test.targets.numpy(), arrays["test"][1])
    assert len(_leftovers(root)) == 4  # every file once, no temp files


def test_download_goes_to_minigrad_data_then_cache(isolated_env, http_root, monkeypatch):
    url, served = http_root
    make_dataset_dir(served, n_train=6, n_test=2)
    monkeypatch.setattr(FashionMNIST, "resources", _resources_for(served))
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    monkeypatch.setenv("MINIGRAD_DATA", str(isolated_env / "env"))
    assert len(FashionMNIST(train=False)) == 2
    assert (isolated_env / "env" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    monkeypatch.delenv("MINIGRAD_DATA")
    assert len(FashionMNIST(train=False)) == 2
    assert (isolated_env / "cache" / "minigrad" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_corrupted_download_is_rejected_and_leaves_nothing(isolated_env, http_root, monkeypatch):
    url, served = http_root
    make_dataset_dir(served, n_train=20, n_test=5)
    monkeypatch.setattr(MNIST, "resources", _resources_for(served))
    monkeypatch.setattr(MNIST, "mirrors", [url])
    target = served / "train-images-idx3-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x55  # same size, different bytes
    target.write_bytes(bytes(data))
    root = isolated_env / "data"
    with pytest.raises(DatasetNotFoundError, match="md5 .* does not match the expected") as info:
        MNIST(root=root)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "train-images-idx3-ubyte" not in " ".join(_leftovers(root))
    target.write_bytes(bytes(data) + b"extra")
    with pytest.raises(DatasetNotFoundError, match="more than the expected"):
        MNIST(root=root)
    assert "train-images-idx3-ubyte" not in " ".join(_leftovers(root))


def test_download_file_size_mismatch_and_missing_url(tmp_path, http_root):
    url, served = http_root
    (served / "f.bin").write_bytes(b"0123456789")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(ChecksumError, match="got 10 bytes, expected 11"):
        dl.download_file(url + "f.bin", dest, size=11, progress=False)
    with pytest.raises(OSError, match="404"):
        dl.download_file(url + "missing.bin", dest, progress=False)
    assert _leftovers(tmp_path / "out") == []
    dl.download_file(url + "f.bin", dest, md5=hashlib.md5(b"0123456789").hexdigest(), size=10,
                     progress=False)
    assert dest.read_bytes() == b"0123456789" and _leftovers(tmp_path / "out") == ["f.bin"]
    with pytest.raises(ChecksumError, match="md5 [0-9a-f]{32} does not match the expected 0+$"):
        dl.download_file(url + "f.bin", tmp_path / "out" / "g.bin", md5="0" * 32, progress=False)
    assert _leftovers(tmp_path / "out") == ["f.bin"]


class _CutsOffHandler(http.server.BaseHTTPRequestHandler):
    """Announces 1000 bytes, sends 10, hangs up: a connection lost mid-download."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"\x00" * 8)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_download_file_detects_a_short_transfer_without_known_size(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutsOffHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        with pytest.raises((ChecksumError, http.client.HTTPException), match="10 bytes|IncompleteRead"):
            dl.download_file(url, tmp_path / "x", progress=False)
        assert _leftovers(tmp_path) == []
    finally:
        server.shutdown()
        server.server_close()


def test_connection_lost_midway_leaves_nothing(isolated_env, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutsOffHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setattr(MNIST, "mirrors", [url, "not a url"])
        root = isolated_env / "data"
        with pytest.raises(DatasetNotFoundError, match="t10k-images-idx3-ubyte.gz: got 10 bytes, "
                           "expected 1648877") as info:
            MNIST(root=root, train=False)
        assert "not a url/t10k-images-idx3-ubyte.gz: unknown url type" in str(info.value)
        assert _leftovers(root) == []
    finally:
        server.shutdown()
        server.server_close()


def test_no_network_error_says_where_to_put_the_files(isolated_env):
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root=isolated_env / "data", train=False)
    msg = str(info.value)
    assert "could not be downloaded" in msg
    assert "http://127.0.0.1:9/t10k-images-idx3-ubyte.gz" in msg
    assert str(isolated_env / "data" / "mnist") in msg and "MINIGRAD_DATA" in msg
    assert "t10k-labels-idx1-ubyte[.gz]" in msg
    assert _leftovers(isolated_env / "data") == []


# ------------------------------------------------------------------------------------------
# Real MNIST, when MINIGRAD_DATA (tests/conftest.py) points at it

def _real_root():
    env = os.environ.get("MINIGRAD_DATA")
    if env and all(any((pathlib.Path(env) / "mnist" / (n + s)).is_file() for s in ("", ".gz"))
                   for split in NAMES.values() for n in split):
        return env
    return None


real = pytest.mark.skipif(_real_root() is None,
                          reason="real MNIST not found ($MINIGRAD_DATA/mnist); synthetic tests cover the code")


@pytest.fixture(scope="module")
def real_train():
    return MNIST(root=_real_root(), train=True, download=False)


@real
def test_real_mnist_train(real_train):
    ds = real_train
    assert ds.data.shape == (60000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.shape == (60000,) and ds.targets.dtype == np.int64
    assert ds.targets.numpy()[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    counts = np.bincount(ds.targets.numpy(), minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    x = ds.data.numpy()
    assert x.min() == 0 and x.max() == 255
    mean = x.mean(dtype=np.float64) / 255
    assert round(mean, 4) == 0.1307


@real
def test_real_mnist_test_split():
    ds = MNIST(root=_real_root(), train=False, download=False, transform=ToFloat())
    assert len(ds) == 10000
    assert ds.targets.numpy()[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(ds.targets.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                        1028, 974, 1009]
    x, y = next(iter(DataLoader(ds, batch_size=100)))
    assert x.shape == (100, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64


@real
def test_real_mnist_loader_epoch_visits_every_image_once(real_train):
    """A shuffled epoch at batch 32 with ToFloat: every image exactly once, as float32 in
    [0, 1].  (How fast an epoch loads is measured by `python -m benchmarks.train`, not here.)"""
    real_train.transform = ToFloat()
    try:
        loader = DataLoader(real_train, batch_size=32, shuffle=True, generator=0)
        label_counts = np.zeros(10, dtype=np.int64)
        seen = 0
        for x, y in loader:
            assert x.dtype == np.float32 and 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
            seen += x.shape[0]
            label_counts += np.bincount(y.numpy(), minlength=10)
        assert seen == 60000
        np.testing.assert_array_equal(label_counts, np.bincount(real_train.targets.numpy(), minlength=10))
    finally:
        real_train.transform = None


# ------------------------------------------------------------------------------------------
# Dataset, TensorDataset, DataLoader


class ListDataset(Dataset):
    """A dataset without get_batch (the per-example path)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2,), i, dtype=np.float32), i


def _epoch_indices(loader):
    seen, sizes = [], []
    for x, y in loader:
        assert isinstance(x, mg.Tensor) and isinstance(y, mg.Tensor)
        assert y.dtype == np.int64
        seen.extend(y.numpy().tolist())
        sizes.append(len(y))
    return seen, sizes


@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(),
       drop_last=st.booleans(), fast=st.booleans())
def test_loader_covers_dataset_once_per_epoch(n, batch_size, shuffle, drop_last, fast):
    if fast:
        ds = TensorDataset(np.arange(2 * n, dtype=np.float32).reshape(n, 2)[:, ::-1], np.arange(n))
    else:
        ds = ListDataset(n)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=3)
    seen, sizes = _epoch_indices(loader)
    assert len(sizes) == len(loader)
    full = n // batch_size
    if drop_last:
        assert sizes == [batch_size] * full
        assert len(set(seen)) == len(seen) == full * batch_size
    else:
        assert sorted(seen) == list(range(n))
        assert sizes == [batch_size] * full + ([n % batch_size] if n % batch_size else [])
    if not shuffle:
        assert seen == list(range(len(seen)))


def test_loader_batches_hold_the_right_rows():
    x = np.arange(30, dtype=np.float64).reshape(10, 3).T.copy().T  # Fortran-ordered rows
    y = np.arange(10) * 7
    for ds in (TensorDataset(mg.tensor(x), mg.tensor(y)), TensorDataset(x[::1], y)):
        for xb, yb in DataLoader(ds, batch_size=4, shuffle=True, generator=1):
            rows = yb.numpy() // 7
            np.testing.assert_array_equal(xb.numpy(), x[rows])
            assert xb.dtype == np.float64
    sliced = TensorDataset(np.arange(40).reshape(20, 2)[::2], np.arange(10))
    xb, yb = next(iter(DataLoader(sliced, batch_size=10)))
    np.testing.assert_array_equal(xb.numpy(), np.arange(40).reshape(20, 2)[::2])


def test_shuffle_is_reproducible():
    ds = TensorDataset(np.zeros((50, 1)), np.arange(50))

    def epochs(loader, k=2):
        return [_epoch_indices(loader)[0] for _ in range(k)]

    a = epochs(DataLoader(ds, batch_size=8, shuffle=True, generator=42))
    b = epochs(DataLoader(ds, batch_size=8, shuffle=True, generator=42))
    c = epochs(DataLoader(ds, batch_size=8, shuffle=True, generator=43))
    assert a == b and a != c
    assert a[0] != a[1]  # a new order every epoch
    assert a[0] != list(range(50))
    mg.manual_seed(7)
    d = epochs(DataLoader(ds, batch_size=8, shuffle=True))
    mg.manual_seed(7)
    e = epochs(DataLoader(ds, batch_size=8, shuffle=True))
    assert d == e
    g = epochs(DataLoader(ds, batch_size=8, shuffle=True, generator=np.random.default_rng(42)))
    assert g == a


def test_loader_transform_and_dataset_transform_paths_agree(isolated_env):
    arrays = make_dataset_dir(isolated_env / "mnist", n_train=23, n_test=3)
    x, y = arrays["train"]
    plain = MNIST(root=isolated_env, download=False)
    with_tf = MNIST(root=isolated_env, download=False, transform=ToFloat())
    per_example = MNIST(root=isolated_env, download=False, transform=lambda im: im / 255.0)
    expected = x[:, None] / np.float32(255)
    batches = {
        "loader": list(DataLoader(plain, batch_size=5, transform=ToFloat())),
        "dataset": list(DataLoader(with_tf, batch_size=5)),
        # a subset hides nothing: still the fast path; and a wrapper without get_batch
        "subset": list(DataLoader(Subset(with_tf, np.arange(23)), batch_size=5)),
        "slow": list(DataLoader(ListWrapper(with_tf), batch_size=5)),
    }
    for name, got in batches.items():
        assert len(got) == 5, name
        xs = np.concatenate([b[0].numpy() for b in got])
        ys = np.concatenate([b[1].numpy() for b in got])
        np.testing.assert_allclose(xs, expected, rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(ys, y)
        assert got[0][0].dtype == np.float32
    slow = np.concatenate([b[0].numpy() for b in DataLoader(per_example, batch_size=4)])
    np.testing.assert_allclose(slow, x / 255.0)


class ListWrapper(Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


def test_collate_fn_and_default_collate():
    ds = ListDataset(7)
    got = list(DataLoader(ds, batch_size=3, collate_fn=lambda s: [i for _, i in s]))
    assert got == [[0, 1, 2], [3, 4, 5], [6]]
    xb, yb = default_collate([(np.ones(2, np.float32), 1), (np.zeros(2, np.float32), 2)])
    assert xb.shape == (2, 2) and yb.dtype == np.int64
    f = default_collate([0.5, 1.5])
    assert f.dtype == mg.get_default_dtype()
    t = default_collate([(mg.tensor([1.0, 2.0]),), (mg.tensor([3.0, 4.0]),)])[0]
    np.testing.assert_array_equal(t, [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"field 0 has examples of different shapes \[\(2,\), \(3,\)\]"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="cannot batch field 1 of type str"):
        default_collate([(1, "a"), (2, "b")])
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1,)])
    single = next(iter(DataLoader(TensorDataset(np.arange(5)), batch_size=5)))
    assert isinstance(single, tuple) and single[0].shape == (5,)


def test_loader_and_dataset_errors():
    with pytest.raises(ValueError, match=r"same size in dim 0.*\[\(3, 2\), \(4,\)\]"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="needs at least one tensor"):
        TensorDataset()
    with pytest.raises(ValueError, match=r"example axis.*\[\(\), \(\)\]"):
        TensorDataset(mg.tensor(1.0), mg.tensor(2.0))
    with pytest.raises(TypeError, match="argument 1 is a list"):
        TensorDataset(np.zeros(2), [1, 2])
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(ListDataset(3), batch_size=0)
    with pytest.raises(ValueError, match="either transform or collate_fn"):
        DataLoader(ListDataset(3), transform=ToFloat(), collate_fn=list)
    with pytest.raises(TypeError, match="generator: expected None, an int seed"):
        DataLoader(ListDataset(3), shuffle=True, generator="seed")
    with pytest.raises(TypeError, match="abstract"):
        Dataset()
    with pytest.raises(IndexError, match=r"Subset: indices must lie in \[-3, 3\)"):
        Subset(ListDataset(3), [0, 3])


def test_random_split_and_subset():
    ds = TensorDataset(np.arange(10), np.arange(10))
    a, b = random_split(ds, [7, 3], generator=0)
    assert len(a) == 7 and len(b) == 3 and hasattr(a, "get_batch")
    seen = [int(a[i][1]) for i in range(7)] + [int(b[i][1]) for i in range(3)]
    assert sorted(seen) == list(range(10))
    assert not hasattr(Subset(ListDataset(4), [1]), "get_batch")
    c, d, e = random_split(ds, [0.5, 0.3, 0.2], generator=0)
    assert (len(c), len(d), len(e)) == (5, 3, 2)
    with pytest.raises(ValueError, match=r"lengths \[5, 6\] must be non-negative and sum to the dataset size 10"):
        random_split(ds, [5, 6])
    xb, yb = next(iter(DataLoader(b, batch_size=3)))
    np.testing.assert_array_equal(xb.numpy(), yb.numpy())


def test_loader_epoch_on_mnist_sized_arrays_is_a_permutation():
    """60,000 uint8 28x28 images, batch 32, shuffled, ToFloat: each image once per epoch, and a
    different order in the next epoch.  (Its speed is a benchmark, not a unit test.)"""
    images = np.random.default_rng(0).integers(0, 256, (60000, 28, 28), dtype=np.uint8)
    loader = DataLoader(TensorDataset(images, np.arange(60000)), batch_size=32,
                        shuffle=True, generator=0, transform=ToFloat())
    orders = []
    for _ in range(2):
        order = np.concatenate([y.numpy() for _, y in loader])
        np.testing.assert_array_equal(np.sort(order), np.arange(60000))
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])
    x, y = next(iter(loader))
    assert x.shape == (32, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(x.numpy()[:, 0], images[y.numpy()] * np.float32(1 / 255))


def test_loader_device_argument(device):
    ds = TensorDataset(np.arange(6, dtype=np.float32), np.arange(6))
    xb, yb = next(iter(DataLoader(ds, batch_size=6, device=device)))
    assert xb.device == mg.Device(device) and yb.device == mg.Device(device)
    np.testing.assert_array_equal(xb.numpy(), np.arange(6))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_checks_the_claimed_size_before_allocating(tmp_path, gz):
    # a 100-byte file claiming (2^32 - 1, 28, 28) would ask NumPy for 3 TiB
    lying = bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(84)
    path = _write(tmp_path, "lying-idx3-ubyte", lying, gz)
    with pytest.raises(IDXError, match=rf"{path.name}.*\(4294967295, 28, 28\)"):
        read_idx(path)
    # a gzip stream whose header claims more than the stream holds, but less than the ratio bound
    short = bytes([0, 0, 8, 1]) + (1000).to_bytes(4, "big") + bytes(500)
    path = _write(tmp_path, "short-idx1-ubyte", short, gz)
    with pytest.raises(IDXError, match=r"truncated.*\(1000,\).*only 500 bytes"):
        read_idx(path)
