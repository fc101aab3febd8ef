"""The generic kernel applying the separable AR operator ``A`` and its transpose (the paper's
``A * y``, Eq. 5b/7); the public functions are in :mod:`arma_core.operator`.

For one spatial axis the operator is the composition ``A^(1) o A^(2) o ... o A^(Q)`` of length-3
factors ``(A^(q) y)_i = f_-1 y[i+d] + f_0 y[i] + f_1 y[i-d]``; the full operator is the product
over axes (axes commute; factors commute only for the circular boundary).
"""

from __future__ import annotations

from .boundary import shift, shift_adjoint

__all__ = ["ar_apply", "ar_apply_adjoint", "apply_kernel", "apply_axis", "apply_all", "channel_view"]


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


def apply_kernel(xp, y, taps, *, boundary: str, dilation: int, adjoint: bool, cache=None):
    """``A y`` (``A^T y`` when ``adjoint``) by shifted copies; every boundary (the ``apply`` row
    of :mod:`arma_core.capabilities`)."""
    return apply_all(xp, y, taps, dilation, boundary, transpose=adjoint)


# the public functions live in arma_core.operator; `from arma_core.apply import ...` keeps working
from .operator import ar_apply, ar_apply_adjoint  # noqa: E402
