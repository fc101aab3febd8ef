"""Per-library fast paths and the one registry that decides when they are used.

``arma_core`` takes its namespace from its inputs and, for each public function, asks
:func:`lookup` whether the library behind that namespace has a faster (or autograd-aware)
implementation. Backend modules are imported lazily, the first time an array of their library
is seen, so ``import arma_core`` never imports torch, cupy, dask or scipy.

A backend module registers implementations at import time::

    from arma_core.backends import register

    @register("ar_solve", "torch")
    def ar_solve(t, taps, *, boundary, dilation, method): ...

An implementation returns ``NotImplemented`` to hand the call back to the generic path
(for instance a fast path that covers only some boundaries or methods).
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable

import array_api_compat as _compat

__all__ = ["register", "lookup", "library_name", "registered"]

# library name -> module that registers its fast paths
_MODULES = {
    "numpy": "arma_core.backends.numpy_scipy",
    "torch": "arma_core.backends.torch",
    "cupy": "arma_core.backends.cupy",
    "dask": "arma_core.backends.dask",
}
_REGISTRY: dict[tuple[str, str], Callable] = {}
_LOADED: set[str] = set()


def library_name(xp) -> str:
    """Short name of the array library behind namespace ``xp`` ("numpy", "torch", ...)."""
    if _compat.is_numpy_namespace(xp):
        return "numpy"
    if _compat.is_torch_namespace(xp):
        return "torch"
    if _compat.is_cupy_namespace(xp):
        return "cupy"
    if _compat.is_dask_namespace(xp):
        return "dask"
    if _compat.is_jax_namespace(xp):
        return "jax"
    if _compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    return getattr(xp, "__name__", "unknown")


def register(function: str, library: str):
    """Decorator: ``impl`` is the fast path of ``arma_core.<function>`` for ``library``."""

    def deco(impl):
        _REGISTRY[(function, library)] = impl
        return impl

    return deco


def _load(library: str) -> None:
    if library in _LOADED:
        return
    _LOADED.add(library)
    module = _MODULES.get(library)
    # a library without a backend module of its own runs the generic array-API code
    if module is not None and importlib.util.find_spec(module) is not None:
        importlib.import_module(module)


def lookup(function: str, xp) -> Callable | None:
    """The registered fast path of ``function`` for the library of ``xp``, or None."""
    library = library_name(xp)
    _load(library)
    return _REGISTRY.get((function, library))


def registered() -> dict[tuple[str, str], Callable]:
    """A copy of the registry (for introspection and tests)."""
    for library in _MODULES:
        try:
            _load(library)
        except ImportError:
            pass
    return dict(_REGISTRY)
