"""minigrad.save / minigrad.load: one .npz, no pickle, atomic writes, structure round trips."""
import collections
import json
import math
import os
import pathlib
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import io as mgio, nn, optim


def _same(a, b, path="root"):
    """Deep equality that checks types and dtypes too (NaN equals NaN)."""
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, mg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.requires_grad == b.requires_grad, path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and (a == b or (a != a and b != b)), path
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}.{i}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b), path


def _roundtrip(obj, tmp_path, **kw):
    path = tmp_path / "ckpt.npz"
    mg.save(obj, path, **kw)
    return mg.load(path)


def _optimizer_like_state():
    return {
        "state": {0: {"step": 3, "exp_avg": mg.randn(3, 2), "exp_avg_sq": mg.rand(3, 2)},
                  1: {"step": 3, "exp_avg": mg.zeros(2), "momentum_buffer": None}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                          "amsgrad": False, "params": [0, 1]}],
    }


def test_round_trip_state_dicts_and_nested_values(tmp_path):
    w = mg.randn(4, 3)
    obj = {
        "model": collections.OrderedDict([("fc1.weight", w), ("fc1.bias", mg.zeros(4)),
                                          ("bn.num_batches_tracked", mg.tensor(7)),
                                          ("double", mg.randn(2, dtype=np.float64))]),
        "optim": _optimizer_like_state(),
        "epoch": 5, "best": 0.9812, "name": "mnist-mlp ✓", "note": None, "flag": True,
        "big": 2**70, "neg_zero": -0.0, "nan": float("nan"), "inf": float("-inf"),
        "arrays": [np.arange(6, dtype=np.int32).reshape(2, 3).T,  # non-contiguous view
                   np.zeros((0, 3), np.float32), np.array(True), np.array([1 + 2j]),
                   np.arange(5, dtype=np.uint8)[::2]],
        "scalars": (np.float32(1.5), np.int64(-3), np.bool_(False)),
        "empty": {}, "empty_list": [], "scalar_tensor": mg.tensor(3.5),
        "leaf": mg.tensor([1.0, 2.0], requires_grad=True),
    }
    back = _roundtrip(obj, tmp_path)
    _same(obj, back)
    assert isinstance(back["model"], collections.OrderedDict)
    assert isinstance(back["optim"]["state"][0]["exp_avg"], mg.Tensor)
    assert back["model"]["fc1.weight"].array is not w.array  # a copy, not an alias


def test_file_is_a_plain_npz_with_a_manifest(tmp_path):
    path = tmp_path / "model.npz"
    mg.save({"fc1": {"weight": mg.ones(2, 2)}, "state": {0: {"m": mg.zeros(3)}}}, path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["__minigrad__", "fc1.weight", "state.0.m"]
        manifest = json.loads(str(z["__minigrad__"]))
        np.testing.assert_array_equal(z["fc1.weight"], np.ones((2, 2), np.float32))
    assert manifest["format"] == "minigrad" and manifest["version"] == 1
    assert manifest["root"]["items"][0][0] == "fc1"


def test_odd_keys_do_not_collide(tmp_path):
    a, b, c = mg.tensor([1.0]), mg.tensor([2.0]), mg.tensor([3.0])
    obj = {"a.b": a, "a": {"b": b}, "x/y z": c, "__minigrad__": mg.tensor([4.0]), "": 1}
    _same(obj, _roundtrip(obj, tmp_path))


def test_path_is_used_exactly_and_compression_works(tmp_path):
    obj = {"w": mg.zeros(1000)}
    mg.save(obj, tmp_path / "plain.ckpt")
    mg.save(obj, str(tmp_path / "small.ckpt"), compress=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.ckpt", "small.ckpt"]
    assert (tmp_path / "small.ckpt").stat().st_size < (tmp_path / "plain.ckpt").stat().st_size
    _same(obj, mg.load(tmp_path / "small.ckpt"))


def test_state_dicts_of_real_modules_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loss = (model(mg.randn(5, 4)) ** 2).sum()
    loss.backward()
    opt.step()
    mg.save({"model": model.state_dict(), "optim": opt.state_dict()}, tmp_path / "m.npz")
    ckpt = mg.load(tmp_path / "m.npz")
    _same(model.state_dict(), ckpt["model"])
    _same(opt.state_dict(), ckpt["optim"])
    fresh = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    fresh.load_state_dict(ckpt["model"])
    x = mg.randn(2, 4)
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))
array_leaf = st.builds(
    lambda dtype, shape, seed: (np.random.default_rng(seed).standard_normal(shape) * 10).astype(dtype),
    st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_]),
    st.lists(st.integers(0, 3), max_size=3).map(tuple), st.integers(0, 1000))
leaf = st.one_of(json_leaf, array_leaf, array_leaf.map(mg.Tensor))
nested = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3)), children, max_size=3)),
    max_leaves=12)


@given(obj=nested)
def test_round_trip_random_structures(obj):
    with tempfile.TemporaryDirectory() as d:
        _same(obj, _roundtrip(obj, pathlib.Path(d)))


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    old = {"w": mg.ones(3), "epoch": 1}
    mg.save(old, path)
    before = path.read_bytes()
    real_write = np.lib.format.write_array
    calls = []

    def dies_midway(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first array went out; the disk "fills up" on the second
            raise OSError(28, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", dies_midway)
    with pytest.raises(OSError, match="No space left"):
        mg.save({"w": mg.zeros(3), "v": mg.zeros(5), "epoch": 2}, path)
    assert len(calls) == 2
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind
    _same(old, mg.load(path))


def test_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    mg.save({"a": 1}, path)

    def no_replace(src, dst):
        raise PermissionError("replace refused")

    monkeypatch.setattr(mgio.os, "replace", no_replace)
    with pytest.raises(PermissionError):
        mg.save({"a": 2}, path)
    monkeypatch.undo()
    assert mg.load(path) == {"a": 1} and os.listdir(tmp_path) == ["ckpt.npz"]


def test_unsupported_objects_name_their_key_path(tmp_path):
    path = tmp_path / "ckpt.npz"
    mg.save({"ok": 1}, path)
    cases = [
        ({"optim": {"state": {0: {"fn": object()}}}}, r"builtins.object at key path 'optim.state.0.fn'"),
        ({"a": [1, {2, 3}]}, r"builtins.set at key path 'a.1'"),
        ({"a": {(1, 2): 3}}, r"dict key \(1, 2\) of type tuple at key path 'a'"),
        ({"a": {True: 3}}, r"dict key True of type bool"),
        ({"arr": np.array([None, 1], dtype=object)}, r"'arr' with dtype object"),
        (lambda: 0, r"function at key path '<root>'"),
        ({"c": 1 + 2j}, r"builtins.complex at key path 'c'"),
        ({"m": _HasStateDict()}, r"_HasStateDict at key path 'm' \(save its .state_dict\(\) instead\)"),
    ]
    for obj, msg in cases:
        with pytest.raises(TypeError, match=msg):
            mg.save(obj, path)
    assert mg.load(path) == {"ok": 1} and os.listdir(tmp_path) == ["ckpt.npz"]
    with pytest.raises(FileNotFoundError, match="save: cannot write .*the folder .*nowhere does not exist"):
        mg.save({"ok": 1}, tmp_path / "nowhere" / "c.npz")


class _HasStateDict:
    def state_dict(self):
        return {}


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="load: no such file: .*missing.npz"):
        mg.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2), b=np.ones(3))
    with pytest.raises(ValueError, match=r"plain .npz file \(keys: a, b\).*no '__minigrad__' manifest"):
        mg.load(tmp_path / "plain.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        mg.load(tmp_path / "one.npy")
    (tmp_path / "junk.npz").write_text("this is not a zip file")
    with pytest.raises(ValueError, match="junk.npz is not a minigrad checkpoint"):
        mg.load(tmp_path / "junk.npz")
    np.save(tmp_path / "pickled.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a minigrad checkpoint"):
        mg.load(tmp_path / "pickled.npy")
    np.savez(tmp_path / "future.npz", __minigrad__=np.array(json.dumps(
        {"format": "minigrad", "version": 99, "root": None})))
    with pytest.raises(ValueError, match="unsupported checkpoint format 'minigrad' version 99"):
        mg.load(tmp_path / "future.npz")
    np.savez(tmp_path / "broken.npz", __minigrad__=np.array(json.dumps(
        {"format": "minigrad", "version": 1,
         "root": {"type": "tensor", "key": "w", "dtype": "<f4", "shape": [2]}})))
    with pytest.raises(ValueError, match="array 'w' for key path '<root>' is missing"):
        mg.load(tmp_path / "broken.npz")


def test_load_onto_device(tmp_path, device):
    mg.save({"w": mg.arange(3.0)}, tmp_path / "c.npz")
    w = mg.load(tmp_path / "c.npz", device=device)["w"]
    assert w.device == mg.Device(device) and w.dtype == np.float32
    np.testing.assert_array_equal(w.numpy(), [0, 1, 2])


def test_load_of_an_empty_or_truncated_file_is_a_valueerror_naming_the_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="model.npz is not a minigrad checkpoint .an empty file"):
        mg.load(path)
    mg.save({"w": mg.ones(2000), "b": mg.zeros(3), "step": 7}, path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="model.npz"):
            mg.load(path)


def test_save_honours_the_umask_and_an_existing_files_mode(tmp_path):
    path = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        mg.save({"w": mg.ones(3)}, path)
        assert (os.stat(path).st_mode & 0o777) == 0o644  # like np.savez / open(path, "w")
        os.umask(0o077)
        mg.save({"w": mg.ones(3)}, tmp_path / "private.npz")
        assert (os.stat(tmp_path / "private.npz").st_mode & 0o777) == 0o600
        os.chmod(path, 0o640)
        mg.save({"w": mg.zeros(3)}, path)   # overwriting keeps the file's own mode
        assert (os.stat(path).st_mode & 0o777) == 0o640
    finally:
        os.umask(old)
    np.testing.assert_array_equal(mg.load(path)["w"].numpy(), np.zeros(3))
