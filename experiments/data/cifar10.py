"""CIFAR-10: the standard ``cifar-10-batches-py`` folder, and 20 real test images from PyPI ``foolbox``.

``cifar-10-batches-py`` is the Python version of Krizhevsky's CIFAR-10 (``data_batch_1`` ...
``data_batch_5``: 50,000 training images, ``test_batch``: 10,000 test images; each a pickled
dict with ``b"data"``, uint8 ``(N, 3072)`` in channel-major order, and ``b"labels"``). This
project downloads nothing: users who have the folder pass its path (``--data-dir``). The
pickles are read with an unpickler that accepts numpy arrays and plain containers only.

For a smoke test of the 3 x 32 x 32 path without the full set, the PyPI package ``foolbox``
(MIT licence; ``pip install --no-deps foolbox==3.3.4``) ships 20 CIFAR-10 test images as
``foolbox/data/cifar10_{index:02d}_{label}.png``; :func:`load_foolbox_cifar10` reads them without
importing foolbox. The images themselves are CIFAR-10's (Krizhevsky 2009), which carries no
licence beyond the request to cite the technical report.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import pickle
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "FOOLBOX_INSTALL",
    "FOOLBOX_REQUIREMENT",
    "Cifar10MissingError",
    "foolbox_data_dir",
    "load_cifar10",
    "load_foolbox_cifar10",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOOLBOX_REQUIREMENT = "foolbox==3.3.4"
FOOLBOX_INSTALL = f"pip install --no-deps {FOOLBOX_REQUIREMENT}"
_SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_FOOLBOX_NAME = re.compile(r"cifar10_(\d\d)_(\d)\.png")


class Cifar10MissingError(FileNotFoundError):
    """A CIFAR-10 file (or the foolbox package with its sample images) is missing."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers; any other global is refused.

    ``_codecs.encode`` is how Python 3 pickles bytes at protocol 2 (a file re-written by Python 3).
    """

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from a CIFAR-10 batch")
        if name == "_reconstruct":
            # _reconstruct is private: it exists at run time but numpy's stubs do not declare it
            try:
                from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined]
            return _reconstruct
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise Cifar10MissingError(
            f"{path} not found: give the folder `cifar-10-batches-py` of the CIFAR-10 python "
            "version (data_batch_1..5, test_batch); nothing is downloaded"
        )
    batch = _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch (a dict with b'data' and b'labels')")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise ValueError(f"{path}: expected data (N, 3072) and N labels, got {data.shape}, {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


@functools.lru_cache(maxsize=2)
def _load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read_batch(folder / name) for name in _SPLITS[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    for a in (images, labels):
        a.setflags(write=False)
    return images, labels


def load_cifar10(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images and labels from a ``cifar-10-batches-py`` folder.

    Parameters
    ----------
    root : path
        The folder (or its parent).
    split : {"train", "test"}

    Returns
    -------
    images : ndarray, shape (N, 3, 32, 32), uint8, read-only
    labels : ndarray, shape (N,), int64 in 0..9, read-only
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    folder = Path(root)
    if not (folder / _SPLITS[split][0]).is_file() and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    return _load_split(folder.resolve(), split)


def foolbox_data_dir() -> Path:
    """``foolbox/data`` of the installed foolbox package, found without importing foolbox."""
    spec = importlib.util.find_spec("foolbox")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data"
        if folder.is_dir():
            return folder
    raise Cifar10MissingError(
        "the 20 CIFAR-10 sample images ship in the PyPI package "
        f"{FOOLBOX_REQUIREMENT}; install it with `{FOOLBOX_INSTALL}` (only its data files are used)"
    )


def load_foolbox_cifar10() -> tuple[np.ndarray, np.ndarray]:
    """The 20 CIFAR-10 test images shipped with foolbox, in index order.

    Returns
    -------
    images : ndarray, shape (20, 3, 32, 32), uint8
    labels : ndarray, shape (20,), int64 (from the file names)
    """
    from PIL import Image

    folder = foolbox_data_dir()
    found = sorted(
        (int(m.group(1)), int(m.group(2)), p) for p in folder.iterdir() if (m := _FOOLBOX_NAME.fullmatch(p.name))
    )
    if [i for i, _, _ in found] != list(range(20)):
        raise Cifar10MissingError(f"{folder} does not hold cifar10_00_*.png ... cifar10_19_*.png")
    images = []
    for _, _, path in found:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
        if array.shape != (32, 32, 3):
            raise ValueError(f"{path}: expected a 32 x 32 RGB image, got {array.shape}")
        images.append(array.transpose(2, 0, 1))
    return np.stack(images), np.array([label for _, label, _ in found], dtype=np.int64)
