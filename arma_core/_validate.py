"""Argument checking shared by every public function.

Every check raises an exception that names the offending argument, so that a user never gets a
silent pass-through or a NaN in place of an error. The public functions validate once, at the
edge; kernels trust what they are given.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NoReturn

import array_api_compat
import numpy as np

from ._typing import BOUNDARIES

__all__ = [
    "BOUNDARIES",
    "UnstableFilterError",
    "namespace",
    "check_boundary",
    "check_positive_int",
    "check_float_dtype",
    "check_finite",
    "check_finite_values",
    "check_taps",
    "isdtype",
    "real_dtype_for_precision",
    "promote_signal",
]


class UnstableFilterError(ValueError):
    """AR taps outside the stable region: the solve would be singular or explode.

    Attributes
    ----------
    channel, axis, factor : int or None
        Index of the first offending factor in ``taps[channel, axis, factor]``.
    margin : float or None
        Its stability margin (minimum response modulus on the unit circle).

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import UnstableFilterError, ar_solve
    >>> taps = np.array([0.6, 1.0, 0.5]).reshape(1, 1, 1, 3)      # |0.6 + 0.5| >= 1
    >>> try:
    ...     ar_solve(np.ones((1, 16)), taps, boundary="zeros")
    ... except UnstableFilterError as err:                          # also a ValueError
    ...     print(err.channel, err.axis, err.factor, round(err.margin, 4))
    0 0 0 0.0408
    """

    def __init__(self, message, *, channel=None, axis=None, factor=None, margin=None):
        super().__init__(message)
        self.channel = channel
        self.axis = axis
        self.factor = factor
        self.margin = margin


#: array types whose namespace does not depend on the instance (numpy and torch arrays)
_NAMESPACE_OF_TYPE: dict[type, Any] = {}


def _namespace_of_type(arrays: tuple) -> Any:
    """The cached namespace when every array has the same known type (so none is None), else None."""
    kind = type(arrays[0])
    for a in arrays[1:]:
        if type(a) is not kind:
            return None
    return _NAMESPACE_OF_TYPE.get(kind)


def namespace(*arrays: Any, names: tuple[str, ...] | None = None, numpy_with_dask: bool = False):
    """The array namespace shared by ``arrays``; a TypeError naming the arguments otherwise.

    With ``numpy_with_dask``, numpy arrays may accompany dask arrays (the namespace is then
    dask's): for callers whose dask backend handles small numpy operands such as taps.
    """
    fast = _namespace_of_type(arrays) if arrays else None
    if fast is not None:
        return fast
    named = [(n, a) for n, a in zip(names or [f"arg{i}" for i in range(len(arrays))], arrays) if a is not None]
    # array_namespace accepts Python scalars (for mixing with arrays); our arguments are arrays
    for n, a in named:
        if not array_api_compat.is_array_api_obj(a):
            raise TypeError(
                f"{n} must be an array of a supported array library (numpy, torch, cupy, dask, "
                f"jax, array-api-strict, ...), got {type(a).__module__}.{type(a).__name__}; "
                "convert it with your library's asarray"
            )
    present = [a for _, a in named]
    try:
        xp = array_api_compat.array_namespace(*present)
    except TypeError as exc:
        # a dask array is made of numpy chunks: small numpy operands (taps) may go with a lazy
        # dask signal; the dask backend slices them per chunk
        dask = [a for a in present if array_api_compat.is_dask_array(a)]
        if (
            numpy_with_dask
            and dask
            and all(array_api_compat.is_dask_array(a) or array_api_compat.is_numpy_array(a) for a in present)
        ):
            return array_api_compat.array_namespace(*dask)
        kinds = ", ".join(f"{n}: {type(a).__module__}.{type(a).__name__}" for n, a in named)
        raise TypeError(
            f"arrays from different or unsupported array libraries were mixed ({kinds}); "
            "convert them to one library first"
        ) from exc
    if present and all(type(a) is type(present[0]) for a in present):
        if array_api_compat.is_numpy_array(present[0]) or array_api_compat.is_torch_array(present[0]):
            _NAMESPACE_OF_TYPE.setdefault(type(present[0]), xp)
    return xp


#: ``xp.isdtype`` answers, which depend on the namespace, dtype and kind only
_DTYPE_KIND: dict[tuple, bool] = {}


def isdtype(xp, dtype, kind) -> bool:
    """``xp.isdtype(dtype, kind)``, memoised (the array-API call costs a microsecond or more)."""
    try:
        key = (xp, dtype, kind)
        hit = _DTYPE_KIND.get(key)
    except TypeError:  # an unhashable dtype
        return bool(xp.isdtype(dtype, kind))
    if hit is None:
        hit = _DTYPE_KIND[key] = bool(xp.isdtype(dtype, kind))
    return hit


def check_boundary(boundary: Any) -> str:
    """``boundary`` if it is one of :data:`BOUNDARIES`, else a ValueError listing them."""
    if not isinstance(boundary, str) or boundary not in BOUNDARIES:
        raise ValueError(f"boundary={boundary!r} is not one of {', '.join(repr(b) for b in BOUNDARIES)}")
    return boundary


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as a Python int >= 1 (numpy integer scalars accepted), else a named error."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {value!r}") from None
    if out < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return out


def check_float_dtype(xp, x, name: str, *, complex_ok: bool = False) -> None:
    """Reject integer and boolean arrays (and complex ones unless ``complex_ok``)."""
    if isdtype(xp, x.dtype, "complex floating"):
        if complex_ok:
            return
        raise TypeError(f"{name} has complex dtype {x.dtype}; only real floating dtypes are supported")
    if not isdtype(xp, x.dtype, "real floating"):
        raise TypeError(f"{name} has dtype {x.dtype}; a real floating dtype (float32 or float64) is required")


#: arrays up to this many elements are tested elementwise (one call, a small boolean temporary);
#: larger ones by their sum first (no temporary)
_SMALL = 1 << 14


def _numel(x) -> int:
    n = x.size
    if callable(n):  # torch
        return int(x.numel())
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return 0  # unknown (lazy): never empty for the check
    return int(n)


def _any_nonfinite(xp, x) -> bool:
    if type(x) is np.ndarray and x.size <= _SMALL:  # the ufunc's own reduction skips two wrappers
        return not np.logical_and.reduce(np.isfinite(x), axis=None)
    if _numel(x) <= _SMALL:
        return not bool(xp.all(xp.isfinite(x)))
    # One reduction without a boolean temporary: the sum of finite values is finite unless it
    # overflows, and any NaN or inf makes it non-finite; only then is the elementwise test run.
    # The sum is in the array's own dtype: float32 summed in float64 cannot overflow, but cost
    # 2.8x numpy's float32 sum and 30x torch's on 32 MiB (more than the solve after it), and a
    # float32 sum overflows only for values near 1e38 / size, where the elementwise test answers.
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is handled below
        total = xp.sum(x)
    if bool(xp.isfinite(total)):
        return False
    return not bool(xp.all(xp.isfinite(x)))


def check_finite(xp, x, name: str) -> None:
    """ValueError naming ``name`` when ``x`` holds NaN or inf (as ``scipy.linalg`` does)."""
    if type(x) is np.ndarray and x.size <= _SMALL:  # the common small call, without the wrappers
        if x.dtype.kind in "fc" and _any_nonfinite(np, x):
            raise_nonfinite(name)
        return
    if not isdtype(xp, x.dtype, ("real floating", "complex floating")) or _numel(x) == 0:
        return  # integers and booleans are finite
    check_finite_values(xp, x, name)


def check_finite_values(xp, x, name: str) -> None:
    """:func:`check_finite` for a floating array (its dtype already known)."""
    if _any_nonfinite(xp, x):
        raise_nonfinite(name)


def raise_nonfinite(name: str) -> NoReturn:
    raise ValueError(
        f"{name} contains NaN or inf; pass check_finite=False to filter it anyway "
        "(non-finite values then spread only as far as the filter's support)"
    )


def check_taps(xp, taps, *, name: str = "taps", finite: bool = True) -> None:
    """``taps`` must be a real floating array ``(C, k, Q, 3)``, k in 1..3, Q >= 1 (C >= 0)."""
    check_float_dtype(xp, taps, name)
    if taps.ndim != 4 or taps.shape[-1] != 3 or not (1 <= taps.shape[1] <= 3) or taps.shape[2] < 1:
        raise ValueError(
            f"{name} must have shape (C, k, Q, 3) with k = 1, 2 or 3 spatial axes and Q >= 1 "
            f"factors, got shape {tuple(taps.shape)}"
        )
    if finite:
        check_finite(xp, taps, name)


def real_dtype_for_precision(xp, dtype):
    """float64 when the namespace has it (build small operators in high precision), else dtype."""
    f64 = getattr(xp, "float64", None)
    if f64 is None:
        return dtype
    # jax names float64 but, unless jax_enable_x64 is set, truncates it to float32 with a
    # warning on every call; its default float dtype tells which mode is on
    if array_api_compat.is_jax_namespace(xp) and xp.asarray(0.0).dtype != f64:
        return dtype
    return f64


def promote_signal(xp, x, taps_dtype, name: str):
    """The floating dtype a signal is computed in, following the array API's promotion.

    Real floating signals promote with the taps (float32 with float64 gives float64); integer
    and boolean signals become the library's float64 first, as ``scipy.signal.lfilter`` does;
    complex signals keep their complex dtype (of the promoted precision) and are filtered as
    two real signals (the operator is real).

    Returns
    -------
    dtype : the dtype of the result
    real : the real dtype the kernels run in (float32 for half-precision results)
    """
    if x.dtype == taps_dtype and (x.dtype == getattr(xp, "float32", None) or x.dtype == getattr(xp, "float64", None)):
        return x.dtype, x.dtype
    if isdtype(xp, x.dtype, ("integral", "bool")):
        base = real_dtype_for_precision(xp, taps_dtype)
        real = xp.result_type(base, taps_dtype)
        return real, real
    if isdtype(xp, x.dtype, "complex floating"):
        real_x = xp.float64 if x.dtype == getattr(xp, "complex128", None) else xp.float32
        real = xp.result_type(real_x, taps_dtype)
        return (xp.complex128 if real == getattr(xp, "float64", None) else xp.complex64), real
    if not isdtype(xp, x.dtype, "real floating"):
        raise TypeError(f"{name} has dtype {x.dtype}; a numeric dtype is required")
    real = xp.result_type(x.dtype, taps_dtype)
    f32 = getattr(xp, "float32", None)
    if f32 is not None and real != f32 and real != getattr(xp, "float64", None):
        # half precision cannot hold the filter's gain or an FFT's round-off: computed in float32
        return real, f32
    return real, real


def finite_size(n: Any, name: str, j: int) -> int:
    """A spatial size known on the host (a lazy library may not know it yet)."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        raise ValueError(f"{name}'s spatial axis {j} has an unknown size")
    return int(n)
