"""Shared fixtures: the array namespaces every public function is tested on.

``xp`` runs a test on numpy, torch (CPU), array-api-strict and cupy; cupy skips cleanly
where it is not installed or no GPU is present. Tests build data in numpy (float64) and move
it to the namespace under test with :func:`to_xp`.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from arma_core.testing import LIBRARIES


def _cupy_or_skip():
    cp = pytest.importorskip("cupy", reason="cupy is not installed")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no device")
    except Exception as exc:  # no driver, no device: CuPy cannot run here
        pytest.skip(f"cupy has no usable GPU ({type(exc).__name__})")
    return cp


def load_namespace(name: str):
    if name == "numpy":
        return importlib.import_module("numpy")
    if name == "torch":
        return pytest.importorskip("torch")
    if name == "array_api_strict":
        return pytest.importorskip("array_api_strict")
    if name == "cupy":
        return _cupy_or_skip()
    raise ValueError(name)


# the eager libraries of the capability table's test cases (dask: test_dask.py; jax compiles
# every shape and runs in test_namespaces.py only)
NAMESPACES = list(dict.fromkeys(lib for lib, _ in LIBRARIES if lib not in ("dask", "jax")))


def lib_name(xp) -> str:
    """The library name of a namespace module (``numpy``, ``torch``, ...)."""
    return xp.__name__.split(".")[0]


@pytest.fixture(params=NAMESPACES)
def xp(request):
    """An array library module (numpy, torch, array_api_strict or cupy)."""
    return load_namespace(request.param)


def dtype_of(xp, name: str):
    return getattr(xp, name)


def to_xp(xp, a, dtype="float64"):
    """numpy array -> array of ``xp`` with the named dtype."""
    a = np.asarray(a)
    if xp.__name__ == "torch":
        return xp.asarray(a.astype(dtype))
    return xp.asarray(a.astype(dtype), dtype=getattr(xp, dtype))


def to_np(a) -> np.ndarray:
    from arma_core._array import to_numpy

    return to_numpy(a)


def random_taps(rng, C, k, Q, *, edge: float | None = None, spread: float = 2.0):
    """Stable taps (C, k, Q, 3), float64 numpy; ``edge``: sum within ``edge`` of +-1."""
    if edge is None:
        s = rng.uniform(-0.9, 0.9, size=(C, k, Q))
    else:
        s = rng.choice([-1.0, 1.0], size=(C, k, Q)) * (1 - edge * rng.uniform(0.2, 1.0, size=(C, k, Q)))
    d = rng.normal(scale=spread, size=(C, k, Q))
    return np.stack([(s + d) / 2, np.ones_like(s), (s - d) / 2], axis=-1)


def rel_err(a, b) -> float:
    a, b = to_np(a), to_np(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


TOL = {"float64": 1e-10, "float32": 1e-5}
