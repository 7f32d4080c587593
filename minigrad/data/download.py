"""Finding data files on disk, and downloading them safely when they are not there.

Search order (first folder holding every needed file wins), for a dataset subfolder such as
``mnist``::

    1. the ``root`` argument:        root/mnist/, then root/
    2. ``$MINIGRAD_DATA``:           $MINIGRAD_DATA/mnist/, then $MINIGRAD_DATA/
    3. the user cache:               $XDG_CACHE_HOME/minigrad/mnist/ (or ~/.cache/minigrad/mnist/),
                                     then the cache folder itself

Downloads go to the first of those subfolders (root/mnist if root was given, else
$MINIGRAD_DATA/mnist, else the cache).  A download is written to a temporary file in the
target folder, its size and md5 are checked, and only then is it renamed into place
(``os.replace`` is atomic): an interrupted or corrupted download never leaves a file behind.
"""
import hashlib
import os
import pathlib
import tempfile

from .. import _env

__all__ = ["DatasetNotFoundError", "ChecksumError", "cache_dir", "candidate_dirs",
           "download_file", "md5sum"]


class DatasetNotFoundError(FileNotFoundError, RuntimeError):
    """The data files are neither on disk nor downloadable; the message says where to put them."""


class ChecksumError(RuntimeError):
    """A downloaded file does not have the expected size or md5."""


def cache_dir():
    """MINIGRAD_CACHE, or ``$XDG_CACHE_HOME/minigrad``, or ``~/.cache/minigrad``."""
    return _env.cache_dir()


def candidate_dirs(root, folder):
    """The folders searched, in order, as ``(path, direct)`` pairs (direct: no subfolder)."""
    bases = []
    if root is not None:
        bases.append(pathlib.Path(os.fspath(root)).expanduser())
    env = _env.setting("MINIGRAD_DATA")
    if env:
        bases.append(pathlib.Path(env).expanduser())
    bases.append(cache_dir())
    out, seen = [], set()
    for base in bases:
        for path, direct in ((base / folder, False), (base, True)):
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                out.append((path, direct))
    return out


def md5sum(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url, dest, md5=None, size=None, progress=True, timeout=30):
    """Download ``url`` to ``dest`` atomically, checking ``size`` and ``md5`` when given.

    Raises ChecksumError (wrong size or md5) or OSError / urllib's URLError (network); in every
    failure case nothing is left at ``dest`` or in its folder.
    """
    import urllib.request

    from tqdm import tqdm

    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.md5()
        written = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = size if size is not None else (int(length) if length else None)
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=dest.name, disable=not progress, leave=False) as bar:
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    written += len(block)
                    if size is not None and written > size:
                        raise ChecksumError(f"more than the expected {size} bytes")
                    h.update(block)
                    out.write(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        expected = size if size is not None else (int(length) if length else None)
        if expected is not None and written != expected:  # also a connection cut short
            raise ChecksumError(f"got {written} bytes, expected {expected}")
        if md5 is not None and h.hexdigest() != md5:
            raise ChecksumError(f"md5 {h.hexdigest()} does not match the expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
