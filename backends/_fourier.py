"""Backward of the circular (``fft``) solve in the Fourier domain, over the array API.

For ``circular`` the operator is diagonal in the DFT basis: ``A = F^{-1} diag(D) F`` with the
separable transfer function ``D(w) = prod_j prod_q D_jq(w_j)``,
``D_jq(w) = f_0 + f_-1 e^{i w d} + f_1 e^{-i w d}`` (``arma_core.solve.denominator``). Theorem 4's
taps gradient ``-<gt, (dA/df) y>`` (Eq. 6a) becomes, by Parseval, with
``dD/df = D / D_jq * phi_f`` (``phi = e^{i w_j d}, 1, e^{-i w_j d}`` for ``f_-1, f_0, f_1``) and
``conj(GT) = conj(G) / D``:

    dL/df = -(1/N) Re sum_w P(w) phi_f(w_j) / D_jq(w_j),   P = sum_batch conj(G) Y

(``P = sum_batch conj(Y) G`` for the adjoint solve), where the sum over the full spectrum is
taken on the one-sided ``rfftn`` grid with weight 2 on the bins whose mirror is not stored.
``P`` is reduced over every axis but ``j`` first, so the taps gradient costs one extra FFT (of
``y``) and ``O(N)`` elementwise work, instead of the several full passes per factor of the
generic :func:`arma_core.solve.taps_vjp`.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import device as _device

from arma_core._validate import real_dtype_for_precision
from arma_core.solve import cached, denominator

__all__ = ["fft_solve_vjp"]


def _factor_response(xp, taps_hi, j, q, n, onesided, dilation, dev):
    """``(re, im)`` of ``D_jq`` and ``(cos, sin)`` of ``w d`` on axis ``j``'s FFT grid."""
    m = n // 2 + 1 if onesided else n
    w = 2.0 * math.pi * np.arange(m) * dilation / n
    cos = xp.asarray(np.cos(w), dtype=taps_hi.dtype, device=dev)
    sin = xp.asarray(np.sin(w), dtype=taps_hi.dtype, device=dev)
    f = taps_hi[:, j, q, :]
    s = (f[:, 0] + f[:, 2])[:, None]
    d = (f[:, 0] - f[:, 2])[:, None]
    return f[:, 1:2] + s * cos, d * sin, cos, sin


def _onesided_weight(n):
    """Weight of each one-sided bin in a full-spectrum sum: 1 for DC (and Nyquist), else 2."""
    m = n // 2 + 1
    w = np.full(m, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def fft_solve_vjp(xp, y, g, taps, *, dilation: int, adjoint: bool = False, need_taps: bool = True, cache=None):
    """Backward of the circular solve ``y = A^{-1} t`` (``A^{-T} t`` when ``adjoint``).

    Parameters
    ----------
    y : array ``(..., C, n_1, ..., n_k)``, the forward output.
    g : array like ``y``, ``dL/dy``.
    taps : array ``(C, k, Q, 3)``.
    cache : dict, optional
        Shared with the ``fft`` kernel: the denominator of the transposed system is kept there.

    Returns
    -------
    grad_t : array like ``g``: ``A^{-T} g`` (``A^{-1} g`` for the adjoint solve), Eq. 6b.
    grad_taps : array ``(C, k, Q, 3)`` like ``taps`` (Eq. 6a), or None without ``need_taps``.
    """
    k, Q = taps.shape[1], taps.shape[2]
    spatial = tuple(g.shape[-k:])
    axes = tuple(range(-k, 0))
    G = xp.fft.rfftn(g, axes=axes)
    D = cached(
        cache,
        ("fft", spatial, not adjoint, str(G.dtype)),
        lambda: denominator(xp, taps, spatial, dilation, conj=not adjoint, dtype=G.dtype),
    )
    grad_t = xp.astype(xp.fft.irfftn(G / D, s=spatial, axes=axes), g.dtype, copy=False)
    if not need_taps:
        return grad_t, None
    Y = xp.fft.rfftn(y, axes=axes)
    P = xp.conj(Y) * G if adjoint else xp.conj(G) * Y
    nd = P.ndim
    batch_axes = tuple(range(nd - k - 1))
    if batch_axes:
        P = xp.sum(P, axis=batch_axes)  # (C, m_1, ..., m_k)
    dev = _device(taps)
    hi = real_dtype_for_precision(xp, taps.dtype)
    taps_hi = xp.astype(taps, hi)
    wlast = xp.asarray(_onesided_weight(spatial[-1]), dtype=hi, device=dev)
    N = float(np.prod(spatial))
    ctype = xp.complex128 if hi == getattr(xp, "float64", None) else P.dtype
    rows = []
    for j in range(k):
        if j == k - 1:
            # (C, m_last): sum over every other axis, then the one-sided weights
            other = tuple(range(1, k))
            Pj = xp.sum(P, axis=other) if other else P
            Pj = xp.astype(Pj, ctype) * xp.astype(wlast, ctype)
        else:
            # (C, m_j, m_last) -> weights on the last axis -> (C, m_j)
            other = tuple(1 + i for i in range(k - 1) if i != j)
            R = xp.sum(P, axis=other) if other else P
            Pj = xp.sum(xp.astype(R, ctype) * xp.astype(wlast, ctype), axis=-1)
        per_q = []
        for q in range(Q):
            re, im, cos, sin = _factor_response(xp, taps_hi, j, q, spatial[j], j == k - 1, dilation, dev)
            # P / D_jq, then times phi = cos +- i sin; keep the real part
            den = re * re + im * im
            pr, pi = xp.real(Pj), xp.imag(Pj)
            ur = (pr * re + pi * im) / den
            ui = (pi * re - pr * im) / den
            per_q.append(
                xp.stack(
                    [
                        -xp.sum(ur * cos - ui * sin, axis=1) / N,  # f_-1: phi = e^{+i w d}
                        -xp.sum(ur, axis=1) / N,
                        -xp.sum(ur * cos + ui * sin, axis=1) / N,  # f_1: phi = e^{-i w d}
                    ],
                    axis=-1,
                )
            )
        rows.append(xp.stack(per_q, axis=1))
    return grad_t, xp.astype(xp.stack(rows, axis=1), taps.dtype)
