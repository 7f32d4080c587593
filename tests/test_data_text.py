"""CharText and TinyShakespeare (minigrad/data/text.py): vocabulary, encode/decode, the 90/10
split, blocks and their next-character targets, random batches, finding the corpus through
MINIGRAD_DATA (md5-checked) and downloading it with minigrad.data.download's machinery."""
import hashlib
import os
import pathlib

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import CharText, DataLoader, TinyShakespeare
from minigrad.data.download import ChecksumError, DatasetNotFoundError

TEXT = "hello world, hello minigrad!\n" * 20


def test_vocabulary_and_round_trip():
    ds = CharText(TEXT, block_size=8)
    assert ds.itos == sorted(set(TEXT)) and ds.vocab_size == len(set(TEXT))
    assert all(ds.stoi[c] == i for i, c in enumerate(ds.itos))
    ids = ds.encode("hello minigrad")
    assert ids.dtype == np.int64 and ds.decode(ids) == "hello minigrad"
    assert ds.decode(mg.tensor(ids)) == ds.decode(list(ids)) == "hello minigrad"
    with pytest.raises(KeyError, match="the character 'Z' is not in the vocabulary"):
        ds.encode("Zebra")
    with pytest.raises(ValueError, match=r"ids must be in \[0, "):
        ds.decode([0, ds.vocab_size])


def test_split_blocks_and_targets():
    train, val = CharText(TEXT, 8, "train"), CharText(TEXT, 8, "val")
    cut = int(len(TEXT) * 0.9)
    assert train.decode(train.ids) == TEXT[:cut] and val.decode(val.ids) == TEXT[cut:]
    assert train.itos == val.itos  # one vocabulary for both splits
    assert len(train) == cut - 8
    x, y = train[5]
    assert train.decode(x) == TEXT[5:13] and train.decode(y) == TEXT[6:14]
    xb, yb = train.get_batch(np.array([0, 5, len(train) - 1]))
    assert xb.shape == yb.shape == (3, 8)
    np.testing.assert_array_equal(xb[:, 1:], yb[:, :-1])  # targets are the inputs shifted by one
    assert train.decode(yb[2]) == TEXT[cut - 8:cut]  # the last block ends at the split
    with pytest.raises(IndexError):
        train[len(train)]
    batches = list(DataLoader(train, batch_size=16))  # the DataLoader's get_batch path
    assert sum(len(b[0]) for b in batches) == len(train)


def test_random_batches_are_seeded_and_cover_the_text():
    ds = CharText(TEXT, 4)
    a, b = ds.random_batch(64, generator=3), ds.random_batch(64, generator=3)
    assert a[0].dtype == np.int64 and a[0].shape == (64, 4)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[0].numpy()[:, 1:], a[1].numpy()[:, :-1])
    mg.manual_seed(0)
    c = ds.random_batch(64)
    mg.manual_seed(0)
    np.testing.assert_array_equal(c[1].numpy(), ds.random_batch(64)[1].numpy())


def test_chartext_errors():
    with pytest.raises(ValueError, match="split must be one of"):
        CharText(TEXT, split="test")
    with pytest.raises(ValueError, match="block_size must be in"):
        CharText("abc", block_size=5)
    with pytest.raises(ValueError, match="non-empty string"):
        CharText("")


def _shakespeare_dir():
    data = os.environ.get("MINIGRAD_DATA")
    path = pathlib.Path(data or "/nonexistent") / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip("tiny Shakespeare is not in $MINIGRAD_DATA/tinyshakespeare")
    return path


def test_tiny_shakespeare_is_found_and_split():
    path = _shakespeare_dir()
    train, val = TinyShakespeare(split="train", download=False), TinyShakespeare(split="val", download=False)
    assert pathlib.Path(train.path) == path
    assert (len(train.ids), len(val.ids), train.vocab_size) == (1003854, 111540, 65)
    assert train.decode(train.ids[:14]) == "First Citizen:"


def test_tiny_shakespeare_download_and_checks(tmp_path, monkeypatch):
    source = _shakespeare_dir()
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="input.txt was not found .download=False."):
        TinyShakespeare(download=False)
    # "download" from a local copy (file:// goes through the same urllib path as https://)
    monkeypatch.setattr(TinyShakespeare, "url", source.as_uri())
    ds = TinyShakespeare(split="val")
    assert pathlib.Path(ds.path) == tmp_path / "data" / "tinyshakespeare" / "input.txt"
    assert hashlib.md5(pathlib.Path(ds.path).read_bytes()).hexdigest() == TinyShakespeare.md5
    # a different file under the name is refused, naming the md5
    pathlib.Path(ds.path).write_text("not Shakespeare")
    with pytest.raises(ChecksumError, match="is not the tiny Shakespeare corpus"):
        TinyShakespeare()
    # a download whose md5 is wrong leaves nothing behind
    os.unlink(ds.path)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(source.read_bytes()[:-1] + b"?")
    monkeypatch.setattr(TinyShakespeare, "url", bad.as_uri())
    with pytest.raises(DatasetNotFoundError, match="md5"):
        TinyShakespeare()
    assert not any((tmp_path / "data" / "tinyshakespeare").iterdir())
