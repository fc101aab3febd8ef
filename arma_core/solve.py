"""Exact solves of the separable AR system ``A * y = t`` (the paper's Eq. 5b, Section 4).

Methods (``docs/math.md`` says which is exact where):

- ``"fft"``: frequency-domain division with one real FFT per signal; the separable denominator
  is built analytically in ``O(n_1 + ... + n_k)`` per channel. Exact for ``circular`` only.
- ``"dense"``: per-axis dense inverses ``X_axis = (A^(Q))^{-1} ... (A^(1))^{-1}`` of the exact
  boundary matrices, applied as batched matrix products. Exact for every boundary and dilation.
  Each factor is inverted on its own (its condition number is at most
  ``(1 + |f_-1| + |f_1|) / margin``) in float64, so ill-conditioning does not compound.

``method="auto"`` asks the array library's backend for its choice, else takes ``fft`` for
``circular`` and ``dense`` otherwise.
"""
from __future__ import annotations

import math

import numpy as np
from array_api_compat import device as _device

from ._validate import real_dtype_for_precision
from .apply import apply_all, apply_axis, prepare
from .boundary import shift, shift_matrix
from .filters import check_stable

__all__ = ["ar_solve", "ar_solve_adjoint", "METHODS", "EXACT_FOR"]

#: which boundaries each method solves exactly
EXACT_FOR = {
    "fft": ("circular",),
    "dense": ("circular", "zeros", "reflect", "replicate"),
}
METHODS = ("auto",) + tuple(EXACT_FOR)


def backend_method(method: str, xp):
    """The implementation a backend registered as ``"method:<method>"`` for ``xp``, or None.

    A backend declares the boundaries its method is exact for in the implementation's
    ``boundaries`` attribute (``arma_core.backends``).
    """
    from arma_core.backends import lookup

    return lookup(f"method:{method}", xp)


def check_method(method: str, boundary: str, xp=None) -> None:
    """ValueError unless ``method`` solves ``boundary`` exactly (for the library of ``xp``)."""
    if method == "auto":
        return
    if method in EXACT_FOR:
        exact = EXACT_FOR[method]
    else:
        impl = backend_method(method, xp) if isinstance(method, str) and xp is not None else None
        if impl is None:
            raise ValueError(
                f"method={method!r} is not one of {', '.join(repr(m) for m in METHODS)} nor a method "
                "registered by this array library's backend (backend methods may need an optional "
                "dependency, e.g. 'lines' needs numba: pip install 'arma-nets[fast]')"
            )
        exact = tuple(getattr(impl, "boundaries", ()))
    if boundary not in exact:
        raise ValueError(
            f"method={method!r} is exact only for boundary in {exact}, "
            f"got boundary={boundary!r}; use method='dense' or 'auto'"
        )


def choose_method(xp, t, taps, boundary: str, dilation: int) -> str:
    """The ``auto`` rule: the backend's choice if it has one, else fft for circular, else dense."""
    from arma_core.backends import lookup

    rule = lookup("choose_method", xp)
    if rule is not None:
        m = rule(t, taps, boundary=boundary, dilation=dilation)
        if m is not None:
            return m
    return "fft" if boundary == "circular" else "dense"


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


def _solve_fft(xp, t, taps, dilation, adjoint):
    k = taps.shape[1]
    spatial = tuple(t.shape[-k:])
    axes = tuple(range(-k, 0))
    T = xp.fft.rfftn(t, axes=axes)
    D = denominator(xp, taps, spatial, dilation, conj=adjoint, dtype=T.dtype)
    y = xp.fft.irfftn(T / D, s=spatial, axes=axes)
    return xp.astype(y, t.dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# dense


def _inv(xp, M):
    from arma_core.backends import lookup

    inv = lookup("linalg_inv", xp)
    return inv(M) if inv is not None else xp.linalg.inv(M)


def axis_inverse(xp, taps, j: int, n: int, dilation: int, boundary: str, dtype):
    """``X = (A^(Q))^{-1} ... (A^(1))^{-1}`` for spatial axis ``j``: shape ``(C, n, n)``.

    Every factor matrix is inverted on its own in float64 (where the library has it) and the
    product is cast to ``dtype`` at the end.
    """
    dev = _device(taps)
    hi = real_dtype_for_precision(xp, taps.dtype)
    taps_hi = xp.astype(taps, hi)
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

    Done as one batched GEMM per channel: channel to the front, ``axis`` last.
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


def _solve_dense(xp, t, taps, dilation, boundary, adjoint):
    k = taps.shape[1]
    y = t
    for j in range(k):
        n = t.shape[j - k]
        X = axis_inverse(xp, taps, j, n, dilation, boundary, t.dtype)
        y = apply_along(xp, X, y, j - k, k, transpose=adjoint)
    return y


# ---------------------------------------------------------------------------------------------
# kernels shared with the backends (no validation: callers validate)


def solve_kernel(xp, t, taps, *, boundary: str, dilation: int, method: str, adjoint: bool = False):
    """``A^{-1} t`` (or ``A^{-T} t``) with an explicit, already validated method."""
    if method == "auto":
        method = choose_method(xp, t, taps, boundary, dilation)
    if method == "fft":
        return _solve_fft(xp, t, taps, dilation, adjoint)
    if method == "dense":
        return _solve_dense(xp, t, taps, dilation, boundary, adjoint)
    impl = backend_method(method, xp)
    if impl is None:
        raise ValueError(f"method={method!r} has no implementation for this array library")
    return impl(t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint)


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


def solve_vjp(xp, y, g, taps, *, boundary: str, dilation: int, method: str, adjoint: bool = False):
    """Backward of ``y = A^{-1} t`` (or of ``y = A^{-T} t`` when ``adjoint``), Theorem 4.

    ``dL/dt = A^{-T} g`` (Eq. 6b; ``A^{-1} g`` for the adjoint solve) and ``dL/dtaps`` from
    :func:`taps_vjp`. Only ``y`` (the output) is needed from the forward pass.

    Returns
    -------
    grad_t : array like ``g``;  grad_taps : array ``(C, k, Q, 3)`` like ``taps``.
    """
    w = solve_kernel(xp, g, taps, boundary=boundary, dilation=dilation, method=method, adjoint=not adjoint)
    if adjoint:
        return w, taps_vjp(xp, y, w, taps, boundary=boundary, dilation=dilation)
    return w, taps_vjp(xp, w, y, taps, boundary=boundary, dilation=dilation)


# ---------------------------------------------------------------------------------------------
# public


def _solve(t, taps, boundary, dilation, method, adjoint, name, dilation_name="dilation",
           check_stability=True):
    xp = prepare(t, taps, boundary, dilation, name=name, dilation_name=dilation_name)
    check_method(method, boundary, xp)
    if check_stability:
        check_stable(taps)
    from arma_core.backends import lookup

    impl = lookup("ar_solve_adjoint" if adjoint else "ar_solve", xp)
    if impl is not None:
        out = impl(t, taps, boundary=boundary, dilation=dilation, method=method)
        if out is not NotImplemented:
            return out
    return solve_kernel(xp, t, taps, boundary=boundary, dilation=dilation, method=method, adjoint=adjoint)


def ar_solve(t, taps, *, boundary: str = "circular", dilation: int = 1, method: str = "auto",
             check_stability: bool = True):
    """Solve the AR layer ``A * y = t`` exactly (the paper's Eq. 5b with Eq. 7's separable ``A``).

    Parameters
    ----------
    t : array, shape ``(..., C, n_1, ..., n_k)``
        Right-hand side (the MA layer's output), real floating, channel-first, any number of
        leading batch axes.
    taps : array, shape ``(C, k, Q, 3)``
        Stable length-3 factors ``(f_-1, f_0, f_1)`` (Theorem 6: ``|f_-1 + f_1| < f_0``),
        same namespace and dtype as ``t``; get them from :func:`arma_core.reparameterize`.
    boundary : {"circular", "zeros", "reflect", "replicate"}
        Meaning of ``y[i +- d]`` outside an axis; ``reflect`` needs ``n > dilation``.
    dilation : int
        AR dilation ``d``.
    method : {"auto", "fft", "dense"} or a backend method such as "lines"
        ``fft`` is exact for ``circular`` only; ``dense`` for every boundary; ``auto`` picks the
        fastest exact one for the array library, boundary and size. A backend may register
        more (``"lines"``: compiled O(N Q) line solvers for numpy and torch CPU arrays when
        numba is installed; ``docs/performance.md``).

    check_stability : bool
        Raise for taps outside the stable strip (default). ``False`` is for experiments with
        unconstrained taps (the paper's Figure 5): the system is then solved as it stands
        (``fft``: division by the response, inf/NaN where it vanishes).

    Returns
    -------
    y : array, same shape, namespace, device and dtype as ``t``.

    Raises
    ------
    UnstableFilterError
        Taps outside the stable strip (naming channel, axis and factor).
    ValueError, TypeError
        Bad shapes, dtypes, boundary, method, or an axis too short for the dilation.

    Notes
    -----
    On torch tensors the solve is differentiable w.r.t. ``t`` and ``taps`` with the backward of
    Theorem 4 (Eq. 6), saving only ``y``.
    """
    return _solve(t, taps, boundary, dilation, method, False, "t", check_stability=check_stability)


def ar_solve_adjoint(t, taps, *, boundary: str = "circular", dilation: int = 1, method: str = "auto"):
    """Solve the transposed system ``A^T * y = t`` (Eq. 6b: ``dL/dT = A^{-T} dL/dY``).

    Same parameters, shapes and errors as :func:`ar_solve`.
    """
    return _solve(t, taps, boundary, dilation, method, True, "t")
