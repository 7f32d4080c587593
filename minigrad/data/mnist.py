"""MNIST and Fashion-MNIST: 28x28 grayscale images in 10 classes, read from the IDX files.

    from minigrad.data import MNIST, DataLoader, ToFloat
    train = MNIST(train=True, transform=ToFloat())     # float32 in [0, 1], (1, 28, 28)
    loader = DataLoader(train, batch_size=64, shuffle=True)

The files keep their standard names (``train-images-idx3-ubyte.gz`` ...), gzip or not, and are
looked for as described in ``minigrad.data.download`` (root argument, ``$MINIGRAD_DATA``, the
user cache; each with a ``mnist/`` or ``fashion-mnist/`` subfolder), and in torchvision's
``root/MNIST/raw/`` (``root/FashionMNIST/raw/``) too.
"""
import http.client
import os
import pathlib

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset
from .download import ChecksumError, DatasetNotFoundError, candidate_dirs, download_file, md5sum
from .idx import IDXError, read_idx
from .transforms import apply_batch

__all__ = ["MNIST", "FashionMNIST"]

# network (URLError and timeouts are OSErrors), a connection cut mid-file (HTTPException),
# a malformed mirror URL (ValueError), a wrong size or md5 (ChecksumError)
_DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, ValueError, ChecksumError)


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images.

    Arguments (as torchvision):
      root              a folder to look in first (see the module docstring for the order)
      train             the training split (True) or the test split (False)
      download          fetch missing files from ``mirrors`` (checked against their md5)
      transform         applied to each image (uint8 (28, 28)); ``ToFloat()`` gives float32 in
                        [0, 1] of shape (1, 28, 28).  Vectorised over batches by the DataLoader
                        when it has ``apply_batch`` (every transform in minigrad.data does).
      target_transform  applied to each label

    Attributes: ``data`` (uint8 Tensor (N, 28, 28)) and ``targets`` (int64 Tensor (N,)) share
    memory with the arrays loaded once from the files; ``classes``; ``folder`` (where the
    files were found).  ``ds[i]`` is ``(image, label)``: a NumPy array (after the transform)
    and a Python int.
    """

    folder = "mnist"
    name = "MNIST"
    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ]
    # gz file -> (md5, size in bytes): the published originals
    resources = {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28881),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1648877),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4542),
    }
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    image_shape = (28, 28)

    def __init__(self, root=None, train=True, download=True, transform=None,
                 target_transform=None):
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        images_path, labels_path = self._find_or_download(root, download)
        self.folder = os.path.dirname(images_path)
        images = read_idx(images_path, expect_dtype=np.uint8, expect_ndim=3)
        labels = read_idx(labels_path, expect_dtype=np.uint8, expect_ndim=1)
        if images.shape[1:] != self.image_shape:
            raise IDXError(f"{self.name}: {images_path}: images of shape {images.shape[1:]}, "
                           f"expected {self.image_shape}")
        if images.shape[0] != labels.shape[0]:
            raise IDXError(f"{self.name}: {images_path} holds {images.shape[0]} images but "
                           f"{labels_path} holds {labels.shape[0]} labels")
        if labels.size and labels.max() >= len(self.classes):
            raise IDXError(f"{self.name}: {labels_path}: label {labels.max()} is out of range "
                           f"for {len(self.classes)} classes")
        self._images = images
        self._labels = labels.astype(np.int64)
        self.data = Tensor._wrap(self._images)
        self.targets = Tensor._wrap(self._labels)

    # -- the dataset protocol ---------------------------------------------------------------
    def __len__(self):
        return self._images.shape[0]

    def __getitem__(self, index):
        image, label = self._images[index], int(self._labels[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def get_batch(self, indices):
        """The batch at ``indices`` as ``(images, labels)`` arrays, transforms applied."""
        images, labels = self._images[indices], self._labels[indices]
        return (apply_batch(self.transform, images), apply_batch(self.target_transform, labels))

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"{self.name}({split}, {len(self)} images, from {self.folder})"

    # -- files ------------------------------------------------------------------------------
    @classmethod
    def filenames(cls, train):
        prefix = "train" if train else "t10k"
        return (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")

    def _find_or_download(self, root, download):
        names = self.filenames(self.train)
        dirs = candidate_dirs(root, self.folder)
        if root is not None:  # also where torchvision keeps them: root/MNIST/raw/
            dirs.insert(1, (pathlib.Path(os.fspath(root)).expanduser() / self.name / "raw", False))
        skipped = []
        for path, direct in dirs:
            found = [_existing(path / n) for n in names]
            if all(found):
                if direct and self._belongs_elsewhere(found):
                    skipped.append(str(path))
                    continue
                return found
        errors = []
        if download:
            target = dirs[0][0]  # the dataset subfolder of the first base
            try:
                return [str(self._download(target, n + ".gz")) for n in names]
            except _DOWNLOAD_ERRORS as e:
                errors = getattr(e, "attempts", [str(e)])
        raise DatasetNotFoundError(self._not_found_message(names, dirs, download, errors, skipped))

    def _download(self, folder, filename):
        dest = folder / filename
        if dest.exists():  # one of the pair may be there already
            return dest
        md5, size = self.resources.get(filename, (None, None))
        attempts = []
        for mirror in self.mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                return download_file(url, dest, md5=md5, size=size)
            except _DOWNLOAD_ERRORS as e:
                attempts.append(f"{url}: {e}")
        err = ChecksumError(f"{self.name}: could not download {filename}")
        err.attempts = attempts
        raise err

    def _belongs_elsewhere(self, paths):
        """Files directly in a base folder are ambiguous (MNIST and Fashion-MNIST share file
        names): reject them when their md5 is that of another dataset's file."""
        mine = {md5 for md5, _ in self.resources.values()}
        for p in paths:
            if p.endswith(".gz") and os.path.getsize(p) in _OTHER_SIZES.get(self.name, ()):
                digest = md5sum(p)
                if digest not in mine and digest in _KNOWN_GZ_MD5:
                    return True
        return False

    def _not_found_message(self, names, dirs, download, errors, skipped):
        lines = [f"{self.name}: the {'training' if self.train else 'test'} files were not found"
                 + (" and could not be downloaded." if download else " (download=False).")]
        lines.append("Looked for " + " and ".join(f"{n}[.gz]" for n in names) + " in:")
        lines += [f"  {p}" for p, _ in dirs]
        if skipped:
            lines.append("Skipped (these files belong to another dataset): " + ", ".join(skipped))
        if errors:
            lines.append("Download attempts:")
            lines += [f"  {e}" for e in errors]
        every = ", ".join(sorted(self.resources))
        lines.append(f"To work offline, copy the files ({every}; gzipped or not) into "
                     f"{dirs[0][0]}/ (or any folder listed above), or set MINIGRAD_DATA=/path/to/data "
                     f"and put them in /path/to/data/{self.folder}/.")
        return "\n".join(lines)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: the same format and sizes as MNIST, 10 kinds of clothing."""

    folder = "fashion-mnist"
    name = "FashionMNIST"
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = {
        "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
        "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", 29515),
        "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", 4422102),
        "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", 5148),
    }
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _existing(stem_path):
    """The uncompressed file if present (faster to read), else the .gz, else None."""
    for p in (stem_path, stem_path.with_name(stem_path.name + ".gz")):
        if p.is_file():
            return str(p)
    return None


_KNOWN_GZ_MD5 = {md5 for cls in (MNIST, FashionMNIST) for md5, _ in cls.resources.values()}
# sizes of the *other* datasets' gz files: an md5 is computed only for a file of such a size
_OTHER_SIZES = {
    "MNIST": {size for _, size in FashionMNIST.resources.values()},
    "FashionMNIST": {size for _, size in MNIST.resources.values()},
}
