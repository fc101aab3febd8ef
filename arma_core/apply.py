"""Applying the separable AR operator ``A`` and its transpose (the paper's ``A * y``, Eq. 5b/7).

For one spatial axis the operator is the composition ``A^(1) o A^(2) o ... o A^(Q)`` of length-3
factors ``(A^(q) y)_i = f_-1 y[i+d] + f_0 y[i] + f_1 y[i-d]``; the full operator is the product
over axes (axes commute; factors commute only for the circular boundary).
"""
from __future__ import annotations

from ._validate import check_boundary, check_positive_int, check_signal, check_taps, namespace
from .boundary import shift, shift_adjoint

__all__ = ["ar_apply", "ar_apply_adjoint"]


def prepare(t, taps, boundary, dilation, name="t", dilation_name="dilation"):
    """Validate a (signal, taps) pair; returns the namespace. ``name`` and ``dilation_name`` are
    what the errors call the signal and the dilation (the public caller's argument names)."""
    # the dask backend takes numpy taps with a dask signal (it slices them per channel chunk)
    xp = namespace(t, taps, names=(name, "taps"), numpy_with_dask=True)
    check_boundary(boundary)
    check_positive_int(dilation, dilation_name)
    check_taps(xp, taps)
    check_signal(xp, t, taps, name=name, dilation=dilation, boundary=boundary, dilation_name=dilation_name)
    return xp


def channel_view(xp, v, k: int):
    """Reshape a per-channel array ``(C,)`` to broadcast against ``(..., C, n_1, ..., n_k)``."""
    return xp.reshape(v, (v.shape[0],) + (1,) * k)


def apply_axis(xp, y, taps, j: int, dilation: int, boundary: str, *, factors=None, transpose=False):
    """Apply the factors ``factors`` (default all, in operator order) of spatial axis ``j``.

    ``A_axis = A^(1) ... A^(Q)`` acts on ``y`` by applying ``A^(Q)`` first; its transpose
    ``A^(Q)T ... A^(1)T`` applies ``A^(1)T`` first.
    """
    k = taps.shape[1]
    Q = taps.shape[2]
    axis = j - k
    qs = list(range(Q)) if factors is None else list(factors)
    order = qs if transpose else qs[::-1]
    for q in order:
        y = _factor(xp, y, taps[:, j, q, :], axis, k, dilation, boundary, transpose)
    return y


def _factor(xp, y, f, axis, k, dilation, boundary, transpose):
    fm, f0, fp = (channel_view(xp, f[:, i], k) for i in range(3))
    sh = shift_adjoint if transpose else shift
    return f0 * y + fm * sh(xp, y, axis, dilation, boundary) + fp * sh(xp, y, axis, -dilation, boundary)


def apply_all(xp, y, taps, dilation, boundary, *, transpose=False, skip_axis=None):
    for j in range(taps.shape[1]):
        if j != skip_axis:
            y = apply_axis(xp, y, taps, j, dilation, boundary, transpose=transpose)
    return y


def _dispatch(xp, function, x, taps, boundary, dilation, transpose):
    """The library's registered fast path of ``function`` if it has one, else the generic code."""
    from arma_core.backends import lookup

    impl = lookup(function, xp)
    if impl is not None:
        out = impl(x, taps, boundary=boundary, dilation=dilation)
        if out is not NotImplemented:
            return out
    return apply_all(xp, x, taps, dilation, boundary, transpose=transpose)


def ar_apply(y, taps, *, boundary: str = "circular", dilation: int = 1):
    """Apply the AR operator: ``t = A * y`` (the left-hand side of the paper's Eq. 5b / Eq. 7).

    Parameters
    ----------
    y : array, shape ``(..., C, n_1, ..., n_k)``
        Real floating signal, channel-first, any number of leading batch axes.
    taps : array, shape ``(C, k, Q, 3)``
        Length-3 factors ``(f_-1, f_0, f_1)`` per channel, spatial axis and factor, same
        namespace and dtype as ``y``.
    boundary : {"circular", "zeros", "reflect", "replicate"}
        What ``y[i +- d]`` means outside the axis (``docs/math.md``).
    dilation : int
        The AR dilation ``d``.

    Returns
    -------
    t : array, same shape, namespace, device and dtype as ``y``.
    """
    xp = prepare(y, taps, boundary, dilation, name="y")
    return _dispatch(xp, "ar_apply", y, taps, boundary, dilation, False)


def ar_apply_adjoint(z, taps, *, boundary: str = "circular", dilation: int = 1):
    """Apply the transposed operator ``A^T z`` (used by Theorem 4's backward, Eq. 6).

    Same parameters and shapes as :func:`ar_apply`. For ``circular`` this is the filter with
    ``f_-1`` and ``f_1`` swapped; for the other boundaries the edge rows differ and the
    transpose is applied exactly as a scatter-add.
    """
    xp = prepare(z, taps, boundary, dilation, name="z")
    return _dispatch(xp, "ar_apply_adjoint", z, taps, boundary, dilation, True)
