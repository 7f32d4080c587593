"""The IDX file format (MNIST, Fashion-MNIST), read strictly.

An IDX file is a tiny header followed by one C-order array, all big-endian::

    bytes 0-1   0x00 0x00                      (magic, always zero)
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                           0x0D float32, 0x0E float64
    byte  3     ndim, the number of dimensions
    then        ndim sizes, each a big-endian uint32
    then        prod(sizes) items of the type, big-endian, nothing after them

Files are usually gzip-compressed (``*.gz``); the reader recognises gzip by its first two bytes
(0x1f 0x8b), whatever the file is called.  Anything that is not exactly this (a wrong magic, a
truncated or overlong payload, a broken gzip stream) raises :class:`IDXError` naming the file:
a damaged file never turns into a wrong array.
"""
import gzip
import os
import zlib

import numpy as np

__all__ = ["IDXError", "read_idx", "idx_header"]

# type code -> big-endian dtype as stored in the file
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file that is not what it should be (bad header, wrong size, broken gzip)."""


def _open(path):
    with open(path, "rb") as probe:
        gz = probe.read(2) == _GZIP_MAGIC
    return (gzip.open(path, "rb") if gz else open(path, "rb")), gz


def _read_exact(f, n, path, what):
    data = f.read(n)
    if len(data) != n:
        raise IDXError(f"read_idx: {path}: file is truncated: expected {n} bytes of {what}, "
                       f"found {len(data)}")
    return data


def _read_into(f, buf):
    """Fill ``buf`` from ``f``; the number of bytes read (less than len(buf) only at EOF)."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def _parse_header(f, path):
    magic = _read_exact(f, 4, path, "magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        raise IDXError(
            f"read_idx: {path}: not an IDX file: magic bytes {magic.hex(' ')} "
            f"(expected 00 00 <type code in {sorted(hex(c) for c in IDX_DTYPES)}> <ndim>)"
        )
    dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
    sizes = np.frombuffer(_read_exact(f, 4 * ndim, path, "dimension sizes"), dtype=">u4")
    return dtype, tuple(int(s) for s in sizes)


# deflate cannot expand data more than about 1032:1, so a gzip file of n bytes holds at most
# this many times n bytes: a header claiming more is lying, whatever the rest of the file says
_MAX_DEFLATE_RATIO = 1032


def _check_claimed_size(path, gz, ndim, shape, dtype, want):
    """Compare the payload size the header claims with what the file can hold, before
    allocating it (a 100-byte file claiming (2^32-1, 28, 28) must not ask for 3 TiB).  A raw
    file's size is exact; a gzip file can hold at most _MAX_DEFLATE_RATIO times its size."""
    size = os.path.getsize(path)
    header = 4 + 4 * ndim
    if not gz:
        if size - header < want:
            raise _truncated(path, shape, dtype, want, size - header)
        return
    if want > _MAX_DEFLATE_RATIO * size:
        raise IDXError(f"read_idx: {path}: the header announces shape {shape} ({want} bytes of "
                       f"{dtype.newbyteorder('=')}), more than a {size}-byte gzip file can hold")
    # (below the bound the array is allocated, lazily, and the read finds any shortfall)


def _truncated(path, shape, dtype, want, got):
    return IDXError(f"read_idx: {path}: file is truncated: the header announces shape {shape} "
                    f"({want} bytes of {dtype.newbyteorder('=')}), but only {got} bytes follow")


def _trailing(path, shape, want):
    return IDXError(f"read_idx: {path}: trailing data after the {want}-byte payload of shape "
                    f"{shape}: the file is corrupt or not the file it claims to be")


def idx_header(path):
    """``(dtype, shape)`` from the header of an IDX file, without reading the payload."""
    path = os.fspath(path)
    try:
        f, _ = _open(path)
        with f:
            dtype, shape = _parse_header(f, path)
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise IDXError(f"read_idx: {path}: cannot read the header ({type(e).__name__}: {e})") from e
    return dtype.newbyteorder("="), shape


def read_idx(path, expect_dtype=None, expect_ndim=None):
    """Read an IDX file (raw or gzip) into a NumPy array in native byte order.

    ``expect_dtype`` / ``expect_ndim``, when given, are checked against the header (an
    images file must be uint8 with 3 dims, a labels file uint8 with 1 dim).  The payload must
    have exactly ``prod(shape) * itemsize`` bytes.  The array is read straight into its final
    buffer (no second copy) and is writable.
    """
    path = os.fspath(path)
    gz = False
    try:
        f, gz = _open(path)
        with f:
            dtype, shape = _parse_header(f, path)
            if expect_dtype is not None and dtype.newbyteorder("=") != np.dtype(expect_dtype):
                raise IDXError(f"read_idx: {path}: holds {dtype.newbyteorder('=')} data, "
                               f"expected {np.dtype(expect_dtype)}")
            if expect_ndim is not None and len(shape) != expect_ndim:
                raise IDXError(f"read_idx: {path}: holds a {len(shape)}-d array of shape {shape}, "
                               f"expected {expect_ndim} dimensions")
            want = int(np.prod(shape, dtype=np.uint64)) * dtype.itemsize
            _check_claimed_size(path, gz, len(shape), shape, dtype, want)
            out = np.empty(shape, dtype=dtype)
            got = _read_into(f, memoryview(out).cast("B")) if want else 0
            if got != want:
                raise _truncated(path, shape, dtype, want, got)
            if f.read(1):
                raise _trailing(path, shape, want)
    except IDXError:
        raise
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        kind = "gzip stream is corrupt or truncated" if gz else "cannot be read"
        raise IDXError(f"read_idx: {path}: {kind} ({type(e).__name__}: {e})") from e
    if not dtype.isnative:
        out = out.astype(dtype.newbyteorder("="))
    return out
