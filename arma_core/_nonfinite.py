"""Containing non-finite samples (``check_finite=False``) within the filter's support.

A solve mixes every sample of a line with its neighbours through the recurrences, FFTs or
matrix products of the method, where ``0 * NaN = NaN`` spreads a NaN further than the exact
result depends on it (a causal filter with the ``zeros`` boundary never looks back, but its
back substitution multiplies by ``f_-1 = 0``). So the kernel runs on the signal with its
non-finite samples set to 0, and the samples whose exact value depends on one of them are set
to NaN afterwards. The operator is separable, so a sample ``i`` depends on a sample ``j``
exactly when it does along every axis; along one axis the dependence of a product of factors
(per channel) is:

- none but ``i = j`` when every factor is diagonal (``f_-1 = f_1 = 0``);
- ``i >= j`` on the same chain ``i = j mod d`` when every factor is causal (``f_-1 = 0``) and
  the rule is ``zeros`` or ``replicate`` (``replicate`` also feeds the first ``d`` rows from
  sample 0, so sample 0 reaches every later sample); ``i <= j`` for anti-causal factors;
- the whole axis otherwise (two-sided factors, or ``circular`` / ``reflect``, which couple
  the edges).

The same rules hold for ``A`` itself (:func:`arma_core.ar_apply`), whose support along an
axis is the stencil; there the kernel's ``0 * NaN`` only reaches the stencil anyway, so no
containment is needed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["axis_kinds", "reach"]

DIAGONAL, FORWARD, BACKWARD, WHOLE = 0, 1, 2, 3


def axis_kinds(host_taps: np.ndarray, boundary: str) -> np.ndarray:
    """``(C, k)`` int array: the dependence kind of every channel's axis (module docstring)."""
    fm = host_taps[..., 0] != 0  # (C, k, Q)
    fp = host_taps[..., 2] != 0
    any_m, any_p = fm.any(axis=2), fp.any(axis=2)
    kinds = np.full(any_m.shape, WHOLE, dtype=np.int64)
    kinds[~any_m & ~any_p] = DIAGONAL
    one_sided = boundary in ("zeros", "replicate")
    if one_sided:
        kinds[~any_m & any_p] = FORWARD  # only f_1 y[i-d]: y[i] depends on t[j <= i]
        kinds[any_m & ~any_p] = BACKWARD
    return kinds


def _chain_scan(xp, bad, axis: int, d: int, reverse: bool):
    """``out[i] = any(bad[j])`` over ``j <= i`` (``>=`` when ``reverse``) with ``j = i mod d``."""
    n = bad.shape[axis]
    idx = [slice(None)] * bad.ndim
    out = xp.zeros_like(bad)
    as_int = xp.astype(bad, xp.int32)
    for r in range(min(d, n)):
        idx[axis] = slice(r, None, d)
        part = as_int[tuple(idx)]
        if reverse:
            part = xp.flip(part, axis=axis)
        part = xp.cumulative_sum(part, axis=axis) > 0
        if reverse:
            part = xp.flip(part, axis=axis)
        pieces = _scatter_chain(xp, out, part, axis, r, d)
        out = pieces
    return out


def _scatter_chain(xp, out, part, axis, r, d):
    """``out`` with its chain ``r::d`` along ``axis`` replaced by ``part`` (no item assignment,
    which some array libraries lack)."""
    n = out.shape[axis]
    pos = np.arange(n)
    chain = (pos % d) == r
    # gather map: position i takes part[(i - r) // d] on the chain, else out[i]
    src = np.where(chain, (pos - r) // d, 0)
    taken = xp.take(part, xp.asarray(src, device=_dev(out)), axis=axis)
    shape = [1] * out.ndim
    shape[axis] = n
    mask = xp.reshape(xp.asarray(chain, device=_dev(out)), tuple(shape))
    return xp.where(mask, taken, out)


def _dev(x):
    from array_api_compat import device

    return device(x)


def _edge(xp, bad, axis: int, first: bool):
    """``bad`` at the first (last) sample of ``axis``, broadcast along it."""
    n = bad.shape[axis]
    idx = [slice(None)] * bad.ndim
    idx[axis] = slice(0, 1) if first else slice(n - 1, n)
    return bad[tuple(idx)]


def _along(xp, bad, axis: int, kind: int, d: int, boundary: str):
    if kind == DIAGONAL:
        return bad
    if kind == WHOLE:
        return xp.broadcast_to(xp.any(bad, axis=axis, keepdims=True), bad.shape)
    forward = kind == FORWARD
    out = _chain_scan(xp, bad, axis, d, reverse=not forward)
    if boundary == "replicate" and d > 1:
        out = out | _edge(xp, bad, axis, first=forward)
    return out


def reach(xp, bad, kinds: np.ndarray, dilation: int, boundary: str):
    """Where the exact solve depends on a True sample of ``bad (..., C, n_1, ..., n_k)``.

    ``kinds`` is :func:`axis_kinds` of the taps (``C`` may be 1 for broadcast taps).
    """
    C, k = kinds.shape
    dev = _dev(bad)
    for j in range(k):
        axis = bad.ndim - k + j
        col = kinds[:, j]
        if np.all(col == col[0]):
            bad = _along(xp, bad, axis, int(col[0]), dilation, boundary)
            continue
        out = xp.zeros_like(bad)
        for kind in np.unique(col):
            sel = xp.reshape(xp.asarray(col == kind, device=dev), (C,) + (1,) * k)
            out = xp.where(sel, _along(xp, bad, axis, int(kind), dilation, boundary), out)
        bad = out
    return bad
