"""Small synthetic IDX files for the data tests (written independently of minigrad's reader).

    write_idx(path, array)                      raw or gzip (by the .gz suffix or gz=True)
    make_dataset_dir(folder, n_train, n_test)   the four MNIST-named files, returns the arrays
"""
import gzip
import pathlib
import struct

import numpy as np

TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}

NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array):
    """The IDX encoding of ``array``: magic (0, 0, type, ndim), big-endian sizes, payload."""
    array = np.asarray(array)
    code = TYPE_CODES[array.dtype.newbyteorder("=")]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, gz=None):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz is None:
        gz = path.suffix == ".gz"
    if gz:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def make_split(n, seed, shape=(28, 28)):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    return images, labels


def make_dataset_dir(folder, n_train=50, n_test=20, gz=True, seed=0):
    """Write the four MNIST-named files into ``folder``; return {"train": (x, y), "test": (x, y)}."""
    folder = pathlib.Path(folder)
    out = {}
    for k, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        images, labels = make_split(n, seed + k)
        suffix = ".gz" if gz else ""
        write_idx(folder / (NAMES[split][0] + suffix), images, gz=gz)
        write_idx(folder / (NAMES[split][1] + suffix), labels, gz=gz)
        out[split] = (images, labels)
    return out
