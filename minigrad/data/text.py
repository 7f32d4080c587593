"""Character-level text: a vocabulary of the characters of a corpus, and contiguous blocks of
it as (input, next-character target) pairs for language models (docs/gpt.md).

    from minigrad.data import TinyShakespeare
    train = TinyShakespeare(split="train", block_size=64)    # the first 90 % of the text
    val = TinyShakespeare(split="val", block_size=64)        # the last 10 %
    x, y = train.random_batch(12)          # int64 (12, 64): y[b, t] is the character after x[b, t]
    train.decode(x[0].tolist())            # back to a string

The tiny Shakespeare corpus (1,115,394 characters of Shakespeare's plays, Karpathy's char-rnn
data set) is looked for as ``tinyshakespeare/input.txt`` like MNIST's files (the ``root``
argument, ``$MINIGRAD_DATA``, the user cache; minigrad.data.download) and downloaded from
its public location, md5-checked, when it is not there.
"""
import http.client

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset, as_generator
from .download import ChecksumError, DatasetNotFoundError, candidate_dirs, download_file, md5sum

__all__ = ["CharText", "TinyShakespeare"]

SPLITS = ("train", "val")


class CharText(Dataset):
    """The characters of ``text`` as integer ids, split into train and validation parts.

    * vocabulary: the sorted distinct characters of the WHOLE text (both splits share it);
      ``stoi`` / ``itos`` map characters to ids and back; ``encode(str)`` gives an int64
      array, ``decode(ids)`` a string; ``vocab_size``.
    * split: the first ``train_fraction`` of the text is "train", the rest "val" (the
      customary 90/10 split: the validation text is later in the plays, never seen in training).
    * examples: ``ds[i]`` is ``(x, y)`` with x = ids[i : i + block_size] and y = ids[i + 1 :
      i + block_size + 1] (every position's target is the next character); ``len(ds)`` is the
      number of such blocks.  ``get_batch(indices)`` makes a whole batch (DataLoader's fast
      path) and ``random_batch(n)`` draws n blocks at random offsets, nanoGPT's sampler."""

    def __init__(self, text, block_size=64, split="train", train_fraction=0.9):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{type(self).__name__}: text must be a non-empty string")
        if split not in SPLITS:
            raise ValueError(f"{type(self).__name__}: split must be one of {SPLITS}, got {split!r}")
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"{type(self).__name__}: train_fraction must be in (0, 1), got {train_fraction!r}")
        self.itos = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self._lookup = np.array(self.itos)
        ids = self.encode(text)
        cut = int(len(ids) * train_fraction)
        self.split, self.block_size = split, int(block_size)
        self.ids = ids[:cut] if split == "train" else ids[cut:]
        if self.block_size < 1 or len(self.ids) <= self.block_size:
            raise ValueError(f"{type(self).__name__}: block_size must be in [1, {len(self.ids) - 1}] for the "
                             f"{len(self.ids)} characters of the {split} split, got {block_size!r}")

    @classmethod
    def from_file(cls, path, block_size=64, split="train", train_fraction=0.9, encoding="utf-8"):
        """A CharText of the text in the file ``path``."""
        with open(path, encoding=encoding) as f:
            return cls(f.read(), block_size, split, train_fraction)

    # -- the vocabulary ----------------------------------------------------------------------
    @property
    def vocab_size(self):
        return len(self.itos)

    def encode(self, text):
        """A string as an int64 array of character ids (KeyError names an unknown character)."""
        try:
            return np.fromiter((self.stoi[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as e:
            raise KeyError(f"{type(self).__name__}.encode: the character {e.args[0]!r} is not in the "
                           f"vocabulary of {self.vocab_size} characters") from None

    def decode(self, ids):
        """Character ids (a list, an array or a Tensor) back to a string."""
        ids = np.asarray(ids.numpy() if isinstance(ids, Tensor) else ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"{type(self).__name__}.decode: ids must be in [0, {self.vocab_size}), "
                             f"got {int(ids.min())}..{int(ids.max())}")
        return "".join(self._lookup[ids].tolist())

    # -- examples ------------------------------------------------------------------------------
    def __len__(self):
        return len(self.ids) - self.block_size

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for {n} blocks")
        i = index % n
        return self.ids[i:i + self.block_size], self.ids[i + 1:i + 1 + self.block_size]

    def get_batch(self, indices):
        """(x, y) int64 arrays (len(indices), block_size) of the blocks starting at ``indices``."""
        rows = np.asarray(indices, dtype=np.int64)[:, None] + np.arange(self.block_size)
        return self.ids[rows], self.ids[rows + 1]

    def random_batch(self, batch_size, generator=None, device=None):
        """``batch_size`` blocks at uniformly random offsets, as int64 Tensors (x, y) of shape
        (batch_size, block_size).  ``generator``: None (minigrad's seeded generator), an int
        seed or a numpy Generator."""
        starts = as_generator(generator).integers(0, len(self), size=int(batch_size))
        x, y = self.get_batch(starts)
        return Tensor(x, device=device), Tensor(y, device=device)

    def __repr__(self):
        return (f"{type(self).__name__}({self.split}, {len(self.ids):,} characters, vocabulary of "
                f"{self.vocab_size}, block_size={self.block_size})")


class TinyShakespeare(CharText):
    """Karpathy's tiny Shakespeare (char-rnn): 1,115,394 characters, 65 distinct; train is the
    first 1,003,854, val the last 111,540.  The file ``tinyshakespeare/input.txt`` is found
    like MNIST's files or downloaded (``download=True``) and checked against its md5."""

    folder = "tinyshakespeare"
    filename = "input.txt"
    url = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    md5, size = "6fb458f1232090904fb40fe944165e91", 1115394

    def __init__(self, root=None, split="train", block_size=64, download=True):
        self.path = self.find(root, download)
        with open(self.path, encoding="utf-8") as f:
            super().__init__(f.read(), block_size, split)

    @classmethod
    def find(cls, root=None, download=True):
        """The path of the corpus file: found (first of the candidate folders holding it) or
        downloaded into the first candidate folder."""
        dirs = candidate_dirs(root, cls.folder)
        for folder, _ in dirs:
            path = folder / cls.filename
            if path.is_file():
                if md5sum(path) != cls.md5:
                    raise ChecksumError(f"{cls.__name__}: {path} is not the tiny Shakespeare corpus (md5 "
                                        f"{md5sum(path)}, expected {cls.md5}); remove it, or read your own "
                                        "text with CharText.from_file")
                return str(path)
        tried = "\n".join(f"  {folder}" for folder, _ in dirs)
        if not download:
            raise DatasetNotFoundError(f"{cls.__name__}: {cls.filename} was not found (download=False) in:\n{tried}")
        dest = dirs[0][0] / cls.filename
        try:
            return str(download_file(cls.url, dest, md5=cls.md5, size=cls.size))
        except (OSError, http.client.HTTPException, ValueError, ChecksumError) as e:
            raise DatasetNotFoundError(
                f"{cls.__name__}: {cls.filename} was not found in:\n{tried}\nand downloading {cls.url} failed: {e}\n"
                f"To work offline, put the file at {dest} (or set MINIGRAD_DATA=/path/to/data and put it in "
                f"/path/to/data/{cls.folder}/).") from e
