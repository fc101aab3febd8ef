"""The generic kernels of the AR solve ``A * y = t`` (the paper's Eq. 5b, Section 4), over the
array API, and the backward of Theorem 4 (Eq. 6) that the torch backend builds on.

- :func:`fft_kernel` (``method="fft"``): frequency-domain division with one real FFT per
  signal; the separable denominator is built analytically in ``O(n_1 + ... + n_k)`` per
  channel. Exact for ``circular`` only.
- :func:`dense_kernel` (``method="dense"``): per-axis dense inverses
  ``X_axis = (A^(Q))^{-1} ... (A^(1))^{-1}`` applied as batched matrix products; exact for
  every boundary and dilation. ``circular`` inverses come from the spectrum (a circulant's
  inverse is the circulant of ``irfft(1 / D)``): LU with partial pivoting grows exponentially
  on wrap-around tridiagonal matrices whose off-diagonal dominates (``docs/math.md``). The
  other boundaries give banded factor matrices (bandwidth ``d``), on which LU with partial
  pivoting has bounded growth; each factor is inverted on its own in float64, so
  ill-conditioning does not compound.

Kernels take a validated signal in the standard layout ``(..., C, n_1, ..., n_k)`` and taps
``(C, k, Q, 3)`` of its dtype (``C`` may be 1 for a signal of any channel count: the taps
broadcast); see :mod:`arma_core.capabilities` for the calling convention. Which kernel runs
is decided there; this module does no dispatch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import device as _device

from ._array import device_kind
from ._validate import real_dtype_for_precision
from .apply import apply_all, apply_axis
from .boundary import shift, shift_matrix

__all__ = [
    "ar_solve",
    "ar_solve_adjoint",
    "EXACT_FOR",
    "METHODS",
    "fft_kernel",
    "dense_kernel",
    "denominator",
    "axis_inverse",
    "apply_along",
    "taps_vjp",
    "solve_vjp",
    "cached",
]


def cached(cache: dict | None, key: Any, make):
    """``cache[key]``, computed by ``make()`` on first use (no caching when ``cache`` is None)."""
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


# ---------------------------------------------------------------------------------------------
# fft


def _axis_response(xp, taps_hi, j: int, n: int, onesided: bool, dilation: int, dev):
    """(re, im) of ``prod_q (f_0 + s cos wd + i t sin wd)`` on the FFT grid of axis ``j``.

    Shapes ``(C, m)`` with ``m = n // 2 + 1`` when ``onesided`` else ``n``; float64.
    """
    m = n // 2 + 1 if onesided else n
    w = 2.0 * math.pi * np.arange(m) * dilation / n
    cos = xp.asarray(np.cos(w), dtype=taps_hi.dtype, device=dev)
    sin = xp.asarray(np.sin(w), dtype=taps_hi.dtype, device=dev)
    re = im = None
    for q in range(taps_hi.shape[2]):
        f = taps_hi[:, j, q, :]
        f0 = f[:, 1:2]
        s = (f[:, 0] + f[:, 2])[:, None]
        d = (f[:, 0] - f[:, 2])[:, None]
        a, b = f0 + s * cos, d * sin
        if re is None:
            re, im = a, b
        else:
            re, im = re * a - im * b, re * b + im * a
    return re, im


def denominator(xp, taps, spatial, dilation: int, *, conj: bool, dtype):
    """The transfer function ``D (C, m_1, ..., m_k)`` of ``A`` on the rfftn grid, in ``dtype``."""
    dev = _device(taps)
    hi = real_dtype_for_precision(xp, taps.dtype)
    taps_hi = xp.astype(taps, hi)
    k = len(spatial)
    D = None
    for j, n in enumerate(spatial):
        re, im = _axis_response(xp, taps_hi, j, n, j == k - 1, dilation, dev)
        if conj:
            im = -im
        shape = (re.shape[0],) + tuple(re.shape[1] if i == j else 1 for i in range(k))
        Dj = xp.astype(xp.reshape(re, shape), dtype) + xp.astype(xp.reshape(im, shape), dtype) * 1j
        D = Dj if D is None else D * Dj
    return D


def fft_kernel(xp, t, taps, *, boundary: str, dilation: int, adjoint: bool, cache=None):
    """``A^{-1} t`` (``A^{-T} t``) for ``circular``: ``irfftn(rfftn(t) / D)``."""
    k = taps.shape[1]
    spatial = tuple(t.shape[-k:])
    axes = tuple(range(-k, 0))
    T = xp.fft.rfftn(t, axes=axes)
    D = cached(
        cache,
        ("fft", spatial, adjoint, str(T.dtype)),
        lambda: denominator(xp, taps, spatial, dilation, conj=adjoint, dtype=T.dtype),
    )
    y = xp.fft.irfftn(T / D, s=spatial, axes=axes)
    return xp.astype(y, t.dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# dense


def _circulant_inverse(xp, taps_hi, j: int, n: int, dilation: int):
    """``(C, n, n)``: the inverse of axis ``j``'s circulant operator, from its spectrum."""
    dev = _device(taps_hi)
    re, im = _axis_response(xp, taps_hi, j, n, True, dilation, dev)
    mod2 = re * re + im * im
    inv = xp.astype(re / mod2, xp.complex128) - xp.astype(im / mod2, xp.complex128) * 1j
    h = xp.fft.irfft(inv, n=n, axis=-1)  # impulse response: column 0 of the inverse
    idx = (np.arange(n)[:, None] - np.arange(n)[None, :]) % n
    flat = xp.asarray(idx.reshape(-1), device=dev)
    return xp.reshape(xp.take(h, flat, axis=1), (h.shape[0], n, n))


def _inv(xp, M):
    # on the CPU one matrix at a time: batched LU on the CPU build of torch 2.13 can raise MKL
    # errors after set_num_threads (DESIGN.md, hazard 2), and the loop costs nothing next to the
    # O(n^3) work; on a GPU one batched call (a loop would launch kernels per channel)
    if M.shape[0] <= 1 or M.shape[-1] < 64 or device_kind(M) != "cpu":
        return xp.linalg.inv(M)
    return xp.stack([xp.linalg.inv(M[i, ...]) for i in range(M.shape[0])], axis=0)


def axis_inverse(xp, taps, j: int, n: int, dilation: int, boundary: str, dtype):
    """``X = (A^(Q))^{-1} ... (A^(1))^{-1}`` for spatial axis ``j``: shape ``(C, n, n)``.

    Circular: from the spectrum. Otherwise every (banded) factor matrix is inverted on its own
    in float64 (where the library has it); the product is cast to ``dtype`` at the end.
    """
    dev = _device(taps)
    hi = real_dtype_for_precision(xp, taps.dtype)
    taps_hi = xp.astype(taps, hi)
    if boundary == "circular" and hi == getattr(xp, "float64", None):
        return xp.astype(_circulant_inverse(xp, taps_hi, j, n, dilation), dtype)
    eye = xp.asarray(np.eye(n), dtype=hi, device=dev)
    Sp = xp.asarray(shift_matrix(n, dilation, boundary), dtype=hi, device=dev)
    Sm = xp.asarray(shift_matrix(n, -dilation, boundary), dtype=hi, device=dev)
    X = None
    for q in range(taps.shape[2]):
        f = taps_hi[:, j, q, :]
        fm, f0, fp = (xp.reshape(f[:, i], (-1, 1, 1)) for i in range(3))
        Xq = _inv(xp, f0 * eye + fm * Sp + fp * Sm)
        X = Xq if X is None else xp.matmul(Xq, X)
    return xp.astype(X, dtype)


def apply_along(xp, X, t, axis: int, k: int, *, transpose: bool):
    """``y[..., c, ..., i, ...] = sum_i' X[c, i, i'] t[..., c, ..., i', ...]`` along ``axis``.

    Done as one batched GEMM per channel: channel to the front, ``axis`` last (``X`` with one
    channel applies to every channel).
    """
    nd = t.ndim
    ch = nd - k - 1
    ax = nd + axis
    u = xp.moveaxis(t, (ch, ax), (0, nd - 1))
    shape = u.shape
    u = xp.reshape(u, (shape[0], -1, shape[-1]))
    Xt = X if transpose else xp.matrix_transpose(X)
    u = xp.matmul(u, Xt)
    u = xp.reshape(u, shape)
    return xp.moveaxis(u, (0, nd - 1), (ch, ax))


def dense_kernel(xp, t, taps, *, boundary: str, dilation: int, adjoint: bool, cache=None):
    """``A^{-1} t`` (``A^{-T} t``) by per-axis dense inverses; every boundary."""
    k = taps.shape[1]
    y = t
    for j in range(k):
        n = t.shape[j - k]
        X = cached(
            cache,
            ("dense", j, n, str(t.dtype)),
            lambda j=j, n=n: axis_inverse(xp, taps, j, n, dilation, boundary, t.dtype),
        )
        y = apply_along(xp, X, y, j - k, k, transpose=adjoint)
    return y


# ---------------------------------------------------------------------------------------------
# the backward of Theorem 4 (generic; the torch backend builds its autograd on it)


def taps_vjp(xp, left, right, taps, *, boundary: str, dilation: int):
    """``-<left, (dA/df) right>`` for every tap ``f``: shape ``(C, k, Q, 3)`` (Theorem 4, Eq. 6a).

    For the tap ``f`` of factor ``q`` on axis ``j``, ``dA/df = A_j^(1..q-1) E_f A_j^(q+1..Q) B_j``
    where ``E_f`` is the shift the tap multiplies and ``B_j`` the other axes' operators, so
    the product is ``-< (A_j^(1..q-1))^T left, E_f A_j^(q+1..Q) B_j right >``, summed over the
    batch and spatial axes. With ``y = A^{-1} t`` and ``gt = A^{-T} dL/dy`` the gradient of the
    solve is ``taps_vjp(gt, y)`` (for circular boundaries the paper's ``-Y^T * dL/dT``); for the
    adjoint solve ``y = A^{-T} t`` it is ``taps_vjp(y, A^{-1} dL/dy)``.
    Only forward shifts are needed, never the solve's intermediate states.
    """
    k, Q = taps.shape[1], taps.shape[2]
    nd = right.ndim
    ch = nd - k - 1
    red = tuple(i for i in range(nd) if i != ch)
    rows = []
    for j in range(k):
        axis = j - k
        z = apply_all(xp, right, taps, dilation, boundary, skip_axis=j)
        per_q = []
        for q in range(Q):
            u = apply_axis(xp, z, taps, j, dilation, boundary, factors=range(q + 1, Q))
            v = apply_axis(xp, left, taps, j, dilation, boundary, factors=range(q), transpose=True)
            per_q.append(
                xp.stack(
                    [
                        -xp.sum(v * shift(xp, u, axis, dilation, boundary), axis=red),
                        -xp.sum(v * u, axis=red),
                        -xp.sum(v * shift(xp, u, axis, -dilation, boundary), axis=red),
                    ],
                    axis=-1,
                )
            )
        rows.append(xp.stack(per_q, axis=1))
    return xp.astype(xp.stack(rows, axis=1), taps.dtype)


def solve_vjp(xp, kernel, y, g, taps, *, boundary: str, dilation: int, adjoint: bool = False, cache=None):
    """Backward of ``y = A^{-1} t`` (or of ``y = A^{-T} t`` when ``adjoint``), Theorem 4.

    ``dL/dt = A^{-T} g`` (Eq. 6b; ``A^{-1} g`` for the adjoint solve), computed with the solve
    ``kernel``, and ``dL/dtaps`` from :func:`taps_vjp`. Only ``y`` (the output) is needed
    from the forward pass.

    Returns
    -------
    grad_t : array like ``g``;  grad_taps : array ``(C, k, Q, 3)`` like ``taps``.
    """
    w = kernel(xp, g, taps, boundary=boundary, dilation=dilation, adjoint=not adjoint, cache=cache)
    if adjoint:
        return w, taps_vjp(xp, y, w, taps, boundary=boundary, dilation=dilation)
    return w, taps_vjp(xp, w, y, taps, boundary=boundary, dilation=dilation)


# The public solves live in arma_core.operator; these names keep `from arma_core.solve import ...`
# working, and EXACT_FOR / METHODS are read off the capability table.
from ._typing import METHODS  # noqa: E402
from .capabilities import TABLE as _TABLE  # noqa: E402
from .operator import ar_solve, ar_solve_adjoint  # noqa: E402

#: which boundaries each solve method is exact for (any library that has it)
EXACT_FOR: dict[str, tuple[str, ...]] = {
    r.method: r.boundaries for r in _TABLE if r.operation == "solve" and r.library == "*"
}
EXACT_FOR.update({r.method: r.boundaries for r in _TABLE if r.operation == "solve" and r.method not in EXACT_FOR})
