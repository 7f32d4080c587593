"""save / load: checkpoints as one ``.npz`` file, never pickle.

    minigrad.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, "ckpt.npz")
    ckpt = minigrad.load("ckpt.npz")
    model.load_state_dict(ckpt["model"])

What can be saved: Tensors, NumPy arrays and scalars, Python numbers (bool, int, float), str,
None, and dicts (str or int keys), lists and tuples nesting them (an OrderedDict comes back as
an OrderedDict).  Anything else raises TypeError naming its key path, before anything is
written.

The file is a normal ``.npz`` (a zip of ``.npy`` arrays) written with ``allow_pickle=False``:
every array is stored under a key made from its path in the structure (``fc1.weight``,
``state.0.exp_avg``), and one extra entry, ``__minigrad__``, holds a JSON manifest that
describes the structure, the kind of every leaf and each array's dtype and shape.  So a
checkpoint can be inspected with ``numpy.load`` alone, and loading one can never run code.

Saving is atomic: the file is written to a temporary file in the same folder, flushed to
disk, and renamed over ``path`` with ``os.replace``; a crash midway leaves the old file intact.
GPU tensors are saved from host memory and load on the CPU (or on ``device=``).
"""
import collections
import json
import numbers
import os
import re
import stat
import tempfile
import zipfile
import zlib

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["save", "load"]

MANIFEST_KEY = "__minigrad__"
FORMAT_VERSION = 1


def _path_str(path):
    return ".".join(str(p) for p in path) if path else "<root>"


class _Writer:
    """Walks an object, collecting arrays and the JSON description of the structure."""

    def __init__(self):
        self.arrays = {}

    def _key(self, path):
        key = re.sub(r"[^A-Za-z0-9_.\-]", "_", ".".join(str(p) for p in path)) or "value"
        base, n = key, 1
        while key in self.arrays or key == MANIFEST_KEY:
            key, n = f"{base}~{n}", n + 1
        return key

    def _array(self, arr, path):
        arr = np.asarray(backend.to_device(arr, backend.CPU))
        if arr.dtype.hasobject or arr.dtype.kind == "V":
            raise TypeError(f"save: cannot store the array at key path {_path_str(path)!r} with "
                            f"dtype {arr.dtype} (object and structured arrays need pickle)")
        key = self._key(path)
        self.arrays[key] = arr
        return {"key": key, "dtype": arr.dtype.str, "shape": list(arr.shape)}

    def node(self, obj, path):
        if isinstance(obj, Tensor):
            node = {"type": "tensor", **self._array(obj.array, path)}
            if obj.requires_grad:
                node["requires_grad"] = True
            return node
        if isinstance(obj, np.ndarray) or backend.device_of(obj) == backend.CUDA:
            return {"type": "ndarray", **self._array(obj, path)}
        if isinstance(obj, np.generic):
            return {"type": "npscalar", **self._array(np.asarray(obj), path)}
        if obj is None or isinstance(obj, (bool, str)):
            return {"type": "value", "value": obj}
        if isinstance(obj, numbers.Integral):
            return {"type": "value", "value": int(obj)}
        if isinstance(obj, float):
            # JSON has no inf/nan; repr round-trips every float exactly
            return {"type": "float", "value": repr(obj)}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(f"save: dict key {k!r} of type {type(k).__name__} at key path "
                                    f"{_path_str(path)!r}: only str and int keys can be saved")
                items.append([k, self.node(v, path + [k])])
            kind = "odict" if isinstance(obj, collections.OrderedDict) else "dict"
            return {"type": kind, "items": items}
        if isinstance(obj, (list, tuple)):
            return {"type": type(obj).__name__ if type(obj) in (list, tuple) else "list",
                    "items": [self.node(v, path + [i]) for i, v in enumerate(obj)]}
        hint = " (save its .state_dict() instead)" if hasattr(obj, "state_dict") else ""
        raise TypeError(f"save: cannot save an object of type {type(obj).__module__}."
                        f"{type(obj).__qualname__} at key path {_path_str(path)!r}{hint}; "
                        "supported: Tensor, numpy array/scalar, bool, int, float, str, None, and "
                        "dict/list/tuple of those")


def _file_mode(path):
    """The permission bits for ``path``: an existing file keeps its own, a new one gets
    0o666 & ~umask (what open(path, "w") and np.savez give)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)  # the only way to read the umask is to set it; put it back at once
        os.umask(umask)
        return 0o666 & ~umask


def save(obj, path, compress=False):
    """Save ``obj`` (a state dict, an optimizer state dict, or nested dicts/lists of Tensors,
    arrays, numbers, strings, None) to ``path`` as one ``.npz`` file, atomically.

    ``compress=True`` uses zip deflate (smaller, slower).  The file is written exactly at
    ``path`` (no ``.npz`` suffix is added).
    """
    path = os.fspath(path)
    writer = _Writer()
    root = writer.node(obj, [])  # raises on unsupported types before touching the disk
    manifest = json.dumps({"format": "minigrad", "version": FORMAT_VERSION, "root": root})
    arrays = dict(writer.arrays)
    arrays[MANIFEST_KEY] = np.array(manifest)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: cannot write {path}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, allow_pickle=False, **arrays)
            f.flush()
            # mkstemp makes the file private (0600); give it the mode a plain open() would:
            # the mode of the file it replaces, or 0666 minus the umask
            os.fchmod(f.fileno(), _file_mode(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path, device=None, map_location=None, weights_only=True):
    """Load what :func:`save` wrote: the same structure, Tensors as Tensors (same dtype,
    on the CPU or on ``device``), arrays as NumPy arrays.  Never unpickles anything.

    PyTorch's names: ``map_location`` (a device: "cpu", "cuda", a Device) is ``device``;
    ``weights_only`` is accepted either way, since a minigrad checkpoint never holds code."""
    if map_location is not None:
        if device is not None or not isinstance(map_location, (str, backend.Device)):
            raise TypeError(f"load: map_location must be a device (\"cpu\", \"cuda\") and given "
                            f"instead of device=, got {map_location!r}")
        device = map_location
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        what = "an empty file" if os.path.getsize(path) == 0 else "not a readable .npz file"
        raise ValueError(f"load: {path} is not a minigrad checkpoint ({what}: "
                         f"{type(e).__name__}: {e})") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"load: {path} is a single .npy array, not a minigrad checkpoint; "
                         "use numpy.load to read it")
    with npz:
        if MANIFEST_KEY not in npz.files:
            shown = ", ".join(npz.files[:5]) + (", ..." if len(npz.files) > 5 else "")
            raise ValueError(f"load: {path} is a plain .npz file (keys: {shown}), not a minigrad "
                             f"checkpoint: it has no {MANIFEST_KEY!r} manifest; use numpy.load")
        try:
            manifest = json.loads(str(npz[MANIFEST_KEY]))
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(f"load: {path}: the {MANIFEST_KEY!r} manifest is not valid JSON") from e
        if manifest.get("format") != "minigrad" or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"load: {path}: unsupported checkpoint format "
                             f"{manifest.get('format')!r} version {manifest.get('version')!r} "
                             f"(this minigrad reads version {FORMAT_VERSION})")
        reader = _Reader(npz, path, backend.Device(device) if device is not None else None)
        try:
            return reader.node(manifest["root"], [])
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a damaged member
            raise ValueError(f"load: {path} is damaged (truncated or corrupt): "
                             f"{type(e).__name__}: {e}") from e


class _Reader:
    def __init__(self, npz, path, device):
        self.npz, self.path, self.device = npz, path, device

    def _array(self, node, where):
        key = node["key"]
        if key not in self.npz.files:
            raise ValueError(f"load: {self.path}: array {key!r} for key path {_path_str(where)!r} "
                             "is missing: the file is damaged")
        arr = self.npz[key]
        if arr.dtype != np.dtype(node["dtype"]) or list(arr.shape) != node["shape"]:
            raise ValueError(f"load: {self.path}: array {key!r} has dtype {arr.dtype} and shape "
                             f"{arr.shape}, the manifest says {node['dtype']} {tuple(node['shape'])}")
        return arr

    def node(self, node, where):
        kind = node["type"]
        if kind == "tensor":
            arr = self._array(node, where)
            if self.device is not None:
                arr = backend.to_device(arr, self.device)
            t = Tensor._wrap(arr)
            if node.get("requires_grad"):
                t.requires_grad_(True)
            return t
        if kind == "ndarray":
            return self._array(node, where)
        if kind == "npscalar":
            return self._array(node, where)[()]
        if kind == "value":
            return node["value"]
        if kind == "float":
            return float(node["value"])
        if kind in ("dict", "odict"):
            out = collections.OrderedDict() if kind == "odict" else {}
            for k, v in node["items"]:
                out[k] = self.node(v, where + [k])
            return out
        if kind in ("list", "tuple"):
            items = [self.node(v, where + [i]) for i, v in enumerate(node["items"])]
            return items if kind == "list" else tuple(items)
        raise ValueError(f"load: {self.path}: unknown entry type {kind!r} at key path "
                         f"{_path_str(where)!r}")
