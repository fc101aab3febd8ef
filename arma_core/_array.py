"""What the core needs to know about an array beyond the array API: its library, its device
kind, and a host copy. The only place that names array libraries (through array-api-compat's
``is_*`` predicates, never by duck typing).
"""

from __future__ import annotations

from typing import Any

import array_api_compat as _compat
import numpy as np

__all__ = ["library_name", "device_of", "device_kind", "to_numpy", "concrete"]


def library_name(xp: Any) -> str:
    """Short name of the array library behind namespace ``xp``.

    One of ``"numpy"``, ``"torch"``, ``"cupy"``, ``"dask"``, ``"jax"``, ``"array_api_strict"``,
    or the namespace's ``__name__`` for any other array-API library (which runs the generic
    rows of :mod:`arma_core.capabilities`).
    """
    for name, test in (
        ("numpy", _compat.is_numpy_namespace),
        ("torch", _compat.is_torch_namespace),
        ("cupy", _compat.is_cupy_namespace),
        ("dask", _compat.is_dask_namespace),
        ("jax", _compat.is_jax_namespace),
        ("array_api_strict", _compat.is_array_api_strict_namespace),
    ):
        if test(xp):
            return name
    return str(getattr(xp, "__name__", "unknown"))


_TORCH_TYPES: dict[type, bool] = {}  # per array type: is it torch's (asked once per type)


def _is_torch(x: Any) -> bool:
    t = type(x)
    known = _TORCH_TYPES.get(t)
    if known is None:
        known = _TORCH_TYPES[t] = bool(_compat.is_torch_array(x))
    return known


def device_of(x: Any) -> Any:
    """``array_api_compat.device(x)``: ``"cpu"`` for a NumPy array, a torch tensor's own
    ``device`` read directly. The per-call path of a filter asks this on every call; compat's
    ``device`` tests each library in turn (about a microsecond per call)."""
    if type(x) is np.ndarray:
        return "cpu"
    if _is_torch(x):
        return x.device
    return _compat.device(x)


def device_kind(x: Any) -> str:
    """``"cpu"`` or ``"cuda"`` (or another accelerator's name) for the device ``x`` lives on.

    NumPy, Dask-of-NumPy and array-api-strict's devices count as ``"cpu"`` (array-api-strict's
    extra devices are CPU arrays that only test device propagation); CuPy is ``"cuda"``.
    """
    if type(x) is np.ndarray:
        return "cpu"
    if _is_torch(x):
        return str(x.device.type)
    if _compat.is_cupy_array(x):
        return "cuda"
    if _compat.is_jax_array(x):
        try:
            return str(next(iter(x.devices())).platform).replace("gpu", "cuda")
        except (AttributeError, StopIteration):
            return "cpu"
    return "cpu"


def concrete(x: Any) -> Any:
    """``x`` with its values computed when it is a lazy (dask) array, else ``x`` itself."""
    if _compat.is_dask_array(x):
        return x.compute()
    return x


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A host copy of ``x`` (any array library, or a sequence) as a numpy array of ``dtype``.

    A numpy ``x`` of that dtype is returned as it is (no copy). Torch tensors leave autograd
    and their device behind; CuPy and Dask arrays are brought to the host (Dask: computed).
    ``dtype=None`` keeps the array's own dtype.

    Examples
    --------
    >>> import torch
    >>> from arma_core.reference import to_numpy
    >>> to_numpy(torch.ones(2, 3, requires_grad=True)).dtype
    dtype('float64')
    >>> to_numpy([1, 2]), to_numpy(torch.arange(3), dtype=None)
    (array([1., 2.]), array([0, 1, 2]))
    """
    if isinstance(x, np.ndarray):
        return np.asarray(x, dtype=dtype)
    if _compat.is_torch_array(x):
        x = x.detach().cpu()
        if x.dtype.is_complex or dtype is not None:
            return np.asarray(x.numpy(), dtype=dtype)
        return x.numpy()
    if _compat.is_cupy_array(x):
        x = x.get()
    elif _compat.is_dask_array(x):
        x = x.compute()
    try:
        return np.array(np.from_dlpack(x), dtype=dtype)
    except (TypeError, AttributeError, RuntimeError, BufferError, ValueError):
        return np.array(x, dtype=dtype)
