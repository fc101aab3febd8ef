"""Fashion-MNIST from Debian's package ``dataset-fashion-mnist`` (nothing is downloaded).

The package (Zalando Research's data, MIT licence) installs the four gzipped IDX files of the
original release under ``/usr/share/datasets/fashion-mnist/``: 60,000 training and 10,000 test
images, 28 x 28 grey levels, labels 0-9 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal,
Shirt, Sneaker, Bag, Ankle boot; 6,000 / 1,000 per class). Install it with::

    sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist

Another folder holding the same four files can be given as ``root`` or in the environment
variable ``ARMA_FASHION_MNIST_DIR``.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_INSTALL",
    "FashionMnistMissingError",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "read_idx",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get update && apt-get install -y dataset-fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# IDX type codes (the third byte of the magic number) -> numpy dtype, big-endian
_IDX_TYPES: dict[int, DTypeLike] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class FashionMnistMissingError(FileNotFoundError):
    """The Fashion-MNIST files are not where they were looked for."""


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder with the four IDX files: ``root``, else ``$ARMA_FASHION_MNIST_DIR``, else Debian's.

    Raises
    ------
    FashionMnistMissingError
        When a file is missing; the message names the install command.
    """
    folder = Path(root or os.environ.get("ARMA_FASHION_MNIST_DIR") or FASHION_MNIST_DIR)
    missing = [name for pair in _FILES.values() for name in pair if not (folder / name).is_file()]
    if missing:
        raise FashionMnistMissingError(
            f"Fashion-MNIST not found: {', '.join(missing)} missing in {folder}. Install Debian's "
            f"package with `{FASHION_MNIST_INSTALL}` (as root), or point root= / "
            "ARMA_FASHION_MNIST_DIR to a folder with the four *-ubyte.gz files."
        )
    return folder


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's format; gzipped when the name ends in ``.gz``).

    The header is two zero bytes, a type code, the number of dimensions ``k`` and ``k``
    big-endian uint32 sizes; the data follow in C order.

    Returns
    -------
    ndarray
        With the file's shape and dtype (native byte order), read-only.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.idx"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6)))
    >>> read_idx(p).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes of data), the file has {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    data = data.astype(dtype.newbyteorder("="), copy=True)
    data.setflags(write=False)
    return data


@functools.lru_cache(maxsize=4)
def _load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = _FILES[split]
    images = read_idx(folder / image_file)
    labels = read_idx(folder / label_file).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{folder / image_file}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{folder / label_file}: expected {len(images)} labels in 0..9")
    labels.setflags(write=False)
    return images, labels


def load_fashion_mnist(split: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images and labels of one split.

    Parameters
    ----------
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    root : path, optional
        Folder with the IDX files (see :func:`fashion_mnist_dir`).

    Returns
    -------
    images : ndarray, shape (N, 28, 28), uint8, read-only
    labels : ndarray, shape (N,), int64 in 0..9, read-only
    """
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    return _load(fashion_mnist_dir(root).resolve(), split)
