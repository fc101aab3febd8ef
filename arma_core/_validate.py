"""Argument checking shared by every public function.

Every check raises an exception that names the offending argument, so that a user never gets a
silent pass-through or a NaN in place of an error.
"""
from __future__ import annotations

import math
from typing import Any

import array_api_compat

BOUNDARIES = ("circular", "zeros", "reflect", "replicate")


class UnstableFilterError(ValueError):
    """AR taps outside the stable region: the solve would be singular or explode.

    Attributes
    ----------
    channel, axis, factor : int or None
        Index of the first offending factor in ``taps[channel, axis, factor]``.
    margin : float or None
        Its stability margin (minimum response modulus on the unit circle).
    """

    def __init__(self, message, *, channel=None, axis=None, factor=None, margin=None):
        super().__init__(message)
        self.channel = channel
        self.axis = axis
        self.factor = factor
        self.margin = margin


def namespace(*arrays: Any, names: tuple[str, ...] | None = None, numpy_with_dask: bool = False):
    """The array namespace shared by ``arrays``; a TypeError naming the arguments otherwise.

    With ``numpy_with_dask``, numpy arrays may accompany dask arrays (the namespace is then
    dask's): for callers whose dask backend handles small numpy operands such as taps.
    """
    named = [
        (n, a)
        for n, a in zip(names or [f"arg{i}" for i in range(len(arrays))], arrays)
        if a is not None
    ]
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
        return array_api_compat.array_namespace(*present)
    except TypeError as exc:
        # a dask array is made of numpy chunks: small numpy operands (taps) may go with a lazy
        # dask signal; the dask backend slices them per chunk
        dask = [a for a in present if array_api_compat.is_dask_array(a)]
        if numpy_with_dask and dask and all(
            array_api_compat.is_dask_array(a) or array_api_compat.is_numpy_array(a) for a in present
        ):
            return array_api_compat.array_namespace(*dask)
        kinds = ", ".join(f"{n}: {type(a).__module__}.{type(a).__name__}" for n, a in named)
        raise TypeError(
            f"arrays from different or unsupported array libraries were mixed ({kinds}); "
            "convert them to one library first"
        ) from exc


def check_boundary(boundary: str) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(
            f"boundary={boundary!r} is not one of {', '.join(repr(b) for b in BOUNDARIES)}"
        )
    return boundary


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_float_dtype(xp, x, name: str):
    """Reject integer, boolean and complex arrays: ARMA layers are real filters."""
    if xp.isdtype(x.dtype, "complex floating"):
        raise TypeError(f"{name} has complex dtype {x.dtype}; only real floating dtypes are supported")
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{name} has dtype {x.dtype}; a real floating dtype (float32 or float64) is required"
        )


def check_finite(xp, x, name: str):
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or inf")


def check_taps(xp, taps, *, name: str = "taps"):
    """``taps`` must be a real floating array of shape ``(C, k, Q, 3)`` with k in 1..3."""
    check_float_dtype(xp, taps, name)
    if taps.ndim != 4 or taps.shape[-1] != 3 or not (1 <= taps.shape[1] <= 3) or taps.shape[2] < 1:
        raise ValueError(
            f"{name} must have shape (C, k, Q, 3) with k = 1, 2 or 3 spatial axes and Q >= 1 "
            f"factors, got shape {tuple(taps.shape)}"
        )
    check_finite(xp, taps, name)


def check_signal(xp, x, taps, *, name: str, dilation: int, boundary: str, dilation_name: str = "dilation"):
    """``x`` of shape ``(..., C, n_1, ..., n_k)`` matching ``taps (C, k, Q, 3)``.

    ``name`` and ``dilation_name`` are what the error messages call the signal and the AR
    dilation (the caller's own argument names)."""
    check_float_dtype(xp, x, name)
    if x.dtype != taps.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but taps has dtype {taps.dtype}; cast one of them"
        )
    C, k = taps.shape[0], taps.shape[1]
    if x.ndim < k + 1:
        raise ValueError(
            f"{name} must have shape (..., C, n_1, ..., n_{k}) for taps with k={k} spatial axes, "
            f"got {x.ndim} dimension(s) {tuple(x.shape)}"
        )
    if x.shape[-k - 1] != C:
        raise ValueError(
            f"{name} has {x.shape[-k - 1]} channels at axis {-k - 1} (shape {tuple(x.shape)}) "
            f"but taps has C={C}"
        )
    for j, n in enumerate(x.shape[-k:]):
        if n is None or (isinstance(n, float) and math.isnan(n)):
            raise ValueError(f"{name}'s spatial axis {j} has an unknown size")
        if n < 1:
            raise ValueError(f"{name}'s spatial axis {j} is empty")
        if boundary == "reflect" and n <= dilation:
            raise ValueError(
                f"{name}'s spatial axis {j} has size {n}, but boundary='reflect' with "
                f"{dilation_name}={dilation} needs at least {dilation + 1} samples"
            )


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
