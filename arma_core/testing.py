"""Assertions for arrays of any library and for AR operators, and the test cases of the
capability table.

- :func:`assert_close`: values, and also namespace, dtype, device and shape (scipy's
  ``xp_assert_close`` is the model);
- :func:`dottest`: the adjoint test ``<A x, y> = <x, A^T y>`` of an :class:`arma_core.ARFilter`
  (PyLops' ``dottest`` is the model), for its :meth:`~arma_core.ARFilter.apply` and its
  :meth:`~arma_core.ARFilter.solve`;
- :func:`capability_cases`: one :class:`Case` per row of :mod:`arma_core.capabilities`, array
  library and device, for ``pytest.mark.parametrize`` (skipped where the library, its device
  or the row's optional dependency is missing).

Examples
--------
>>> import numpy as np
>>> from arma_core import ARFilter
>>> from arma_core.testing import assert_close, dottest
>>> A = ARFilter(np.array([0.3, 1.0, -0.2]).reshape(1, 1, 1, 3), boundary="reflect")
>>> dottest(A, (4, 16))
>>> dottest(A, (4, 16), solve=True)
>>> assert_close(A.solve(A.apply(np.ones(16))), np.ones(16))
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as _device

from ._array import library_name, to_numpy
from .capabilities import TABLE, Capability

__all__ = ["assert_close", "dottest", "Case", "capability_cases", "LIBRARIES"]

#: the libraries (and devices) cases are drawn from; ``"device1"`` is array-api-strict's
#: second device, which tests that results stay on the input's device
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("numpy", "cpu"),
    ("torch", "cpu"),
    ("torch", "cuda"),
    ("array_api_strict", "cpu"),
    ("array_api_strict", "device1"),
    ("cupy", "cuda"),
    ("jax", "cpu"),
    ("dask", "cpu"),
)


def assert_close(
    actual,
    desired,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    check_namespace: bool = True,
    check_dtype: bool = True,
    check_device: bool = True,
    check_shape: bool = True,
    err_msg: str = "",
) -> None:
    """Assert ``actual`` equals ``desired`` to tolerance, and is the same kind of array.

    Parameters
    ----------
    actual, desired : arrays (any library; ``desired`` may be numpy when the checks of
        namespace, dtype and device are switched off)
    rtol : float, optional
        Relative tolerance; default 1e-5 for float32/complex64 ``actual``, else 1e-10.
    atol : float
        Absolute tolerance.
    check_namespace, check_dtype, check_device, check_shape : bool
        Also require the same array library, dtype, device and shape.
    err_msg : str
        Prefixed to the failure message.

    Raises
    ------
    AssertionError
        Naming the first property that differs (namespace, dtype, device, shape, values).

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.testing import assert_close
    >>> assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-12]))
    >>> assert_close(np.array([1.0, 2.0], dtype=np.float32), np.array([1.0, 2.0]), err_msg="solve")
    Traceback (most recent call last):
        ...
    AssertionError: solve: dtype float32 != float64
    """
    head = f"{err_msg}: " if err_msg else ""
    if check_namespace:
        a_ns, d_ns = library_name(array_namespace(actual)), library_name(array_namespace(desired))
        assert a_ns == d_ns, f"{head}namespace {a_ns} != {d_ns}"
    if check_dtype:
        assert actual.dtype == desired.dtype, f"{head}dtype {actual.dtype} != {desired.dtype}"
    if check_device:
        assert _device(actual) == _device(desired), f"{head}device {_device(actual)} != {_device(desired)}"
    if check_shape:
        assert tuple(actual.shape) == tuple(desired.shape), (
            f"{head}shape {tuple(actual.shape)} != {tuple(desired.shape)}"
        )
    a, d = to_numpy(actual, dtype=None), to_numpy(desired, dtype=None)
    if rtol is None:
        rtol = 1e-5 if a.dtype in (np.float32, np.complex64) else 1e-10
    np.testing.assert_allclose(a, d, rtol=rtol, atol=atol, err_msg=head)


def dottest(op, shape: Sequence[int], *, solve: bool = False, rtol: float | None = None, seed: int = 0) -> None:
    """Assert ``<A x, y> = <x, A^T y>`` (or, with ``solve``, ``<A^-1 x, y> = <x, A^-T y>``).

    Parameters
    ----------
    op : ARFilter
        The operator; ``x`` and ``y`` are drawn in its taps' library, dtype and device.
    shape : sequence of int
        The signal shape the operator acts on.
    solve : bool
        Test :meth:`solve` and ``op.T.solve`` instead of :meth:`apply` and ``op.T.apply``.
    rtol : float, optional
        Relative tolerance of the two inner products; default 1e-4 in float32, 1e-10 else.
    seed : int
        For the random ``x`` and ``y``.

    Raises
    ------
    AssertionError
        When the two inner products differ by more than ``rtol`` (relative).

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import ARFilter
    >>> from arma_core.testing import dottest
    >>> A = ARFilter(np.tile([0.3, 1.0, -0.2], (2, 2, 1, 1)), boundary="replicate")   # (C, k, Q, 3)
    >>> dottest(A, (5, 2, 8, 9))                # batch 5, C = 2, 8 x 9 grid
    >>> dottest(A, (5, 2, 8, 9), solve=True)
    """
    xp = array_namespace(op.taps)
    rng = np.random.default_rng(seed)
    x_np, y_np = rng.normal(size=tuple(shape)), rng.normal(size=tuple(shape))
    x = xp.asarray(x_np, dtype=op.dtype, device=op.device)
    y = xp.asarray(y_np, dtype=op.dtype, device=op.device)
    fwd, back = (op.solve, op.T.solve) if solve else (op.apply, op.T.apply)
    lhs = float(np.sum(to_numpy(fwd(x)) * to_numpy(y)))
    rhs = float(np.sum(to_numpy(x) * to_numpy(back(y))))
    if rtol is None:
        rtol = 1e-4 if to_numpy(op.taps, dtype=None).dtype == np.float32 else 1e-10
    scale = max(abs(lhs), abs(rhs), 1e-300)
    assert abs(lhs - rhs) <= rtol * scale, (
        f"dot test of {op!r}{' solve' if solve else ''} on {tuple(shape)}: {lhs!r} != {rhs!r}"
    )


# ---------------------------------------------------------------------------------------------
# cases of the capability table


@dataclass(frozen=True)
class Case:
    """One row of the capability table on one library and device.

    Attributes
    ----------
    row : Capability
    library : str
        A library of :data:`LIBRARIES` (``"numpy"``, ``"torch"``, ``"array_api_strict"``, ...).
    device : str
        ``"cpu"``, ``"cuda"`` or array-api-strict's ``"device1"``.

    Examples
    --------
    >>> from arma_core.capabilities import rows
    >>> from arma_core.testing import Case
    >>> case = Case(rows("solve", "numpy")[-1], "numpy", "cpu")    # the generic dense row
    >>> case.id, case.skip_reason()
    ('numpy-dense', None)
    >>> case.asarray([[1.0, 2.0]]).shape
    (1, 2)
    """

    row: Capability
    library: str
    device: str

    @property
    def id(self) -> str:
        dev = "" if self.device == "cpu" else f"-{self.device}"
        return f"{self.library}{dev}-{self.row.method}"

    def skip_reason(self) -> str | None:
        """Why this case cannot run here, or None."""
        module = {"dask": "dask.array"}.get(self.library, self.library)
        try:
            mod = importlib.import_module(module)
        except ImportError:
            return f"{self.library} is not installed"
        if self.device == "cuda":
            if self.library == "torch" and not mod.cuda.is_available():
                return "torch has no CUDA device"
            if self.library == "cupy":
                try:
                    if mod.cuda.runtime.getDeviceCount() < 1:
                        return "cupy has no GPU"
                except Exception as exc:  # no driver: CuPy cannot run here
                    return f"cupy has no usable GPU ({type(exc).__name__})"
        if not self.row.available():
            return f"{self.row.method} needs {', '.join(self.row.requires)}"
        return None

    def namespace(self):
        """The array-API namespace of the case's library."""
        if self.library == "dask":
            import dask.array as da

            return array_namespace(da.zeros(1))
        if self.library == "array_api_strict":
            return importlib.import_module("array_api_strict")
        return array_namespace(self.asarray(np.zeros(1)))

    def asarray(self, a: Any, dtype: str = "float64"):
        """``a`` (numpy) as an array of the case's library, dtype and device."""
        a = np.asarray(a, dtype=dtype)
        if self.library == "numpy":
            return a
        if self.library == "dask":
            import dask.array as da

            return da.from_array(a, chunks=((1,) + a.shape[1:]) if a.ndim > 1 else a.shape)
        mod = importlib.import_module(self.library)
        if self.library == "torch":
            return mod.asarray(a, device=self.device)
        if self.library == "array_api_strict":
            return mod.asarray(
                a,
                dtype=getattr(mod, dtype),
                device=mod.Device("CPU_DEVICE" if self.device == "cpu" else self.device),
            )
        return mod.asarray(a, dtype=getattr(mod, dtype))


def _lands_on(row: Capability, library: str) -> bool:
    """Whether ``row`` is what ``library`` runs for its method (its own row or the generic)."""
    if row.library == library:
        return True
    if row.library != "*":
        return False
    own = [r for r in TABLE if r.operation == row.operation and r.library == library and r.method == row.method]
    return not own


def capability_cases(operation: str, *, method: str | None = None) -> list:
    """``pytest.param(Case, id=..., marks=skip)`` for every row of ``operation`` (and
    ``method``), on every library and device of :data:`LIBRARIES` that runs it.

    Parameters
    ----------
    operation : {"solve", "apply", "conv"}
    method : str, optional
        Only the rows of this method.

    Returns
    -------
    list of pytest.param
        Each holds one :class:`Case`, with a skip mark where the library, its device or the
        row's optional dependency is missing here.

    Examples
    --------
    >>> from arma_core.testing import capability_cases
    >>> [p.id for p in capability_cases("solve", method="dense")]    # doctest: +NORMALIZE_WHITESPACE
    ['torch-dense', 'torch-cuda-dense', 'dask-dense', 'cupy-cuda-dense', 'numpy-dense',
     'array_api_strict-dense', 'array_api_strict-device1-dense', 'jax-dense']

    In a test module, one test id per case::

        @pytest.mark.parametrize("case", capability_cases("solve"))
        def test_solve(case): ...
    """
    import pytest

    out = []
    for row in TABLE:
        if row.operation != operation or (method is not None and row.method != method):
            continue
        for library, device in LIBRARIES:
            if not _lands_on(row, library) or not row.runs_on(device):
                continue
            if device != "cpu" and row.devices == ("any",) and library != "array_api_strict":
                continue
            case = Case(row, library, device)
            reason = case.skip_reason()
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            out.append(pytest.param(case, id=case.id, marks=marks))
    return out
