"""numba kernels of the line solver; imported only by :mod:`arma_core.backends._lines` when numba is.

Conventions (see ``_lines`` for the math): a channel block is a C-contiguous ``(n1, n2, n3)``
array (leading sizes 1 when the signal has k < 3 spatial axes). Per block axis the solve
operators are a tuple ``ops = (l, pinv, sup, M, rng, cols)``:

- ``l (C, Q, n)``: Thomas multipliers (``l[i] = f_1 / p[i - d]``, 0 for ``i < d``),
- ``pinv (C, Q, n)``: reciprocal pivots, ``sup (C, Q)``: the super-diagonal ``f_-1``,
- ``M (C, Q, nc, n)``, ``cols (nc,)``: the Woodbury correction ``y -= M^T z[cols]`` applied
  after the back substitution ``z = T^{-1} t``,
- ``rng (C, Q, 2)``: rows ``[rng0, rng1)`` where ``M`` is zero (skipped).

The edge structure of a boundary, ``est = (erow, ecol, etap)``, lists the entries of
``E = A_f - T`` (``etap`` 0: carries ``f_-1``; 2: ``f_1``).

All kernels are compiled with ``cache=True`` (the first call in a fresh environment compiles,
later processes load the machine code from ``__pycache__``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_FLAGS = {"nsz", "arcp", "contract", "reassoc"}  # no "nnan"/"ninf": NaN in a signal propagates
# entries of M smaller than this fraction of their largest are dropped: float64's
# unit roundoff, far below what float32 or float64 results can resolve
DROP = 2.0**-53


def _jit(**kw):
    return njit(cache=True, fastmath=_FLAGS, nogil=True, **kw)


# ---------------------------------------------------------------------------------------------
# operators


@_jit()
def drop_small(Mt, cut, nzr, rng):
    """Zero the entries of ``Mt (nc, n)`` that are ``<= cut`` in magnitude; ``rng`` = the
    longest run of columns left all zero (``nzr (n,)`` scratch)."""
    nc, n = Mt.shape
    for i in range(n):
        nzr[i] = 0
    for b in range(nc):
        mb = Mt[b]
        for i in range(n):
            keep = abs(mb[i]) > cut
            mb[i] = mb[i] if keep else 0.0
            nzr[i] |= keep
    best0, best1, run0 = 0, 0, -1
    for i in range(n):
        if nzr[i]:
            run0 = -1
        else:
            if run0 < 0:
                run0 = i
            if i + 1 - run0 > best1 - best0:
                best0, best1 = run0, i + 1
    rng[0] = best0
    rng[1] = best1


@_jit()
def precompute_one(
    taps_ax, c, q, n, d, transposed, urows, ucols, ri, ci, etap, l, pinv, sup, M, rng, p, W, Ec, K, X, nzr
):
    """:func:`precompute` for channel ``c`` and factor ``q``, in the scratch ``p (n)``,
    ``W (n, m)``, ``Ec (m, nc)``, ``K (m, m)``, ``X (m, nc)``, ``nzr (n,)`` bool."""
    m, nc = urows.shape[0], ucols.shape[0]
    fm = taps_ax[c, q, 0]
    f0 = taps_ax[c, q, 1]
    fp = taps_ax[c, q, 2]
    if transposed:
        fm, fp = fp, fm
    # T: row i has f_-1 (fm) at column i + d, f_0 at i, f_1 (fp) at i - d
    for i in range(min(d, n)):
        p[i] = f0
        l[c, q, i] = 0.0
    # the d chains run the same recurrence from the same start; once a pivot repeats
    # exactly (p[i] == p[i - d], d times in a row) every later pivot and multiplier
    # repeats too, so the serial divisions stop there (the values are unchanged)
    same = 0
    conv = n
    for i in range(d, n):
        li = fp / p[i - d]
        l[c, q, i] = li
        p[i] = f0 - li * fm
        same = same + 1 if p[i] == p[i - d] else 0
        if same >= d:
            conv = i + 1
            break
    lq, pq = l[c, q], pinv[c, q]
    for i in range(conv):
        pq[i] = 1.0 / p[i]
    for j in range(conv - d, conv) if conv < n else range(0):  # fill each chain's tail
        lj, pj, qj = lq[j], p[j], pq[j]
        for i in range(j + d, n, d):
            lq[i] = lj
            p[i] = pj
            pq[i] = qj
    sup[c, q] = fm
    rng[c, q, 0] = 0
    rng[c, q, 1] = n
    if m == 0:
        return
    # W = T^{-1} U
    # column kk is zero above its unit entry through the forward elimination (the edge rows
    # sit at both ends, so half the columns skip it); the back substitution runs the m
    # columns side by side (independent recurrences in flight)
    for i in range(n):
        for kk in range(m):
            W[i, kk] = 0.0
    for kk in range(m):
        u = urows[kk]
        W[u, kk] = 1.0
        if d == 1:  # the chain's value stays in a register
            w = 1.0
            for i in range(u + 1, n):
                w = -lq[i] * w
                W[i, kk] = w
        else:
            for i in range(u + d, n):
                W[i, kk] -= lq[i] * W[i - d, kk]
    for i in range(n - 1, n - 1 - min(d, n), -1):
        pi = pq[i]
        for kk in range(m):
            W[i, kk] *= pi
    for i in range(n - 1 - d, -1, -1):
        pi = pq[i]
        for kk in range(m):
            W[i, kk] = (W[i, kk] - fm * W[i + d, kk]) * pi
    for a in range(m):
        for b in range(nc):
            Ec[a, b] = 0.0
    for e in range(etap.shape[0]):
        Ec[ri[e], ci[e]] += taps_ax[c, q, etap[e]]
    # K = I + V^T T^{-1} U ;  X = K^{-1} Ec  (Gaussian elimination, partial pivoting)
    for a in range(m):
        for b in range(m):
            acc = 1.0 if a == b else 0.0
            for j in range(nc):
                acc += Ec[a, j] * W[ucols[j], b]
            K[a, b] = acc
        for b in range(nc):
            X[a, b] = Ec[a, b]
    for col in range(m):
        piv = col
        for r in range(col + 1, m):
            if abs(K[r, col]) > abs(K[piv, col]):
                piv = r
        if piv != col:
            for b in range(m):
                tmp = K[col, b]
                K[col, b] = K[piv, b]
                K[piv, b] = tmp
            for b in range(nc):
                tmp = X[col, b]
                X[col, b] = X[piv, b]
                X[piv, b] = tmp
        inv = 1.0 / K[col, col]
        for r in range(col + 1, m):
            f = K[r, col] * inv
            if f != 0.0:
                for b in range(col, m):
                    K[r, b] -= f * K[col, b]
                for b in range(nc):
                    X[r, b] -= f * X[col, b]
    for col in range(m - 1, -1, -1):
        for b in range(nc):
            v = X[col, b]
            for r in range(col + 1, m):
                v -= K[col, r] * X[r, b]
            X[col, b] = v / K[col, col]
    # M^T = (W X)^T without its negligible entries, rows of M^T as inner loops (vectorised);
    # rng = the longest run of rows of M left zero
    Mt = M[c, q]
    big = 0.0
    for b in range(nc):
        mb = Mt[b]
        for i in range(n):
            mb[i] = 0.0
        for a in range(m):
            x = X[a, b]
            for i in range(n):
                mb[i] += W[i, a] * x
        for i in range(n):
            big = max(big, abs(mb[i]))
    drop_small(Mt, big * DROP, nzr, rng[c, q])


@_jit(parallel=True)
def precompute(taps_ax, n, d, transposed, urows, ucols, ri, ci, etap, l, pinv, sup, M, rng, nchunks):
    """Thomas factors and the Woodbury correction for every (channel, factor) of one axis,
    the pairs in parallel (``nchunks`` chunks, each with its own scratch).

    ``taps_ax (C, Q, 3)`` float64; ``urows``/``ucols`` the rows/columns ``E`` (``E^T`` when
    ``transposed``) touches, ``ri``/``ci`` each entry's index into them, ``etap`` its tap.
    Fills ``l, pinv, sup, M, rng`` (float64 / int64, module docstring).
    """
    C, Q = taps_ax.shape[0], taps_ax.shape[1]
    m, nc = urows.shape[0], ucols.shape[0]
    CQ = C * Q
    per = (CQ + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        p = np.empty(n)
        W = np.empty((n if m > 0 else 0, m))
        Ec = np.empty((m, nc))
        K = np.empty((m, m))
        X = np.empty((m, nc))
        nzr = np.empty(n if m > 0 else 0, np.bool_)
        for j in range(ch * per, min(CQ, (ch + 1) * per)):
            precompute_one(
                taps_ax,
                j // Q,
                j % Q,
                n,
                d,
                transposed,
                urows,
                ucols,
                ri,
                ci,
                etap,
                l,
                pinv,
                sup,
                M,
                rng,
                p,
                W,
                Ec,
                K,
                X,
                nzr,
            )


# ---------------------------------------------------------------------------------------------
# the solve


@_jit()
def forward(src, y, l, d, from_src):
    """Forward elimination along axis 0 of ``y (n, R)``: ``y[i] = x[i] - l[i] y[i - d]`` with
    ``x = src`` (same shape, any float dtype) when ``from_src`` else ``y`` itself; every row
    operation is a vector operation over the R lanes.

    ``d == 1`` has its own loops: with the shift a literal, LLVM vectorises the row update
    without a run-time overlap check (measured 0.16 against 0.47 ns per element).
    """
    n, R = y.shape
    if from_src:
        for i in range(min(d, n)):
            for r in range(R):
                y[i, r] = src[i, r]
    if d == 1:
        if from_src:
            for i in range(1, n):
                li = l[i]
                for r in range(R):
                    y[i, r] = src[i, r] - li * y[i - 1, r]
        else:
            for i in range(1, n):
                li = l[i]
                for r in range(R):
                    y[i, r] -= li * y[i - 1, r]
    elif from_src:
        for i in range(d, n):
            li = l[i]
            for r in range(R):
                y[i, r] = src[i, r] - li * y[i - d, r]
    else:
        for i in range(d, n):
            li = l[i]
            for r in range(R):
                y[i, r] -= li * y[i - d, r]


@_jit()
def correct(y, lo, hi, cols, M, zc):
    """``y[i] -= M[:, i] . z[cols]`` for the rows ``i`` outside ``[lo, hi)`` (``M`` is zero
    inside), ``zc (nc, >= R)`` holding ``z[cols]``."""
    n, R = y.shape
    nc = cols.shape[0]
    for i in range(n):
        if lo <= i < hi:
            continue
        for j in range(nc):
            mji = M[j, i]
            if mji != 0.0:
                for r in range(R):
                    y[i, r] -= mji * zc[j, r]


@_jit()
def backward(y, pinv, sup, d, cols, M, lo, hi, zc):
    """Back substitution along axis 0 of ``y (n, R)``, ``z = U^{-1} w``, then the Woodbury
    correction ``y = z - M^T z[cols]`` (``zc``: scratch ``(nc, >= R)``), vectorised over R."""
    n, R = y.shape
    for i in range(n - 1, max(n - 1 - d, -1), -1):
        pi = pinv[i]
        for r in range(R):
            y[i, r] *= pi
    for i in range(n - 1 - d, -1, -1):
        pi = pinv[i]
        for r in range(R):
            y[i, r] = (y[i, r] - sup * y[i + d, r]) * pi
    nc = cols.shape[0]
    if nc > 0:
        for j in range(nc):
            cj = cols[j]
            for r in range(R):
                zc[j, r] = y[cj, r]
        correct(y, lo, hi, cols, M, zc)


@_jit()
def solve_axis(y3, ops, c, d, rev, zc, src3, from_src):
    """Every factor of one axis on ``y3 (A, n, R)`` float64 (the axis in the middle).

    With ``from_src`` the first factor reads its input from ``src3`` (same shape).
    """
    l, pinv, sup, M, rng, cols = ops
    Q = l.shape[1]
    for qq in range(Q):
        q = Q - 1 - qq if rev else qq
        for a in range(y3.shape[0]):
            forward(src3[a], y3[a], l[c, q], d, qq == 0 and from_src)
            backward(y3[a], pinv[c, q], sup[c, q], d, cols, M[c, q], rng[c, q, 0], rng[c, q, 1], zc)


#: rows of the last axis solved together (the lanes of :func:`solve_axis` after a transpose)
STRIP = 32
#: longest last axis solved in strips when it has one factor (Q = 1); longer lines take the
#: scalar chains of :func:`solve_last`. The strip's transposes read rows ``n3 * 8`` bytes
#: apart, which from 256 on map onto few cache sets. Measured side by side, this solver with
#: strips everywhere against the previous one (chains on the last axis), circular: at Q = 1 1.6x
#: faster at 64 x 64, even at 256 x 256, 1.45x slower at 512 x 512 and 1024 x 1024; at Q = 3
#: faster at every size (2.2x at 64 x 64, 1.2x at 1024 x 1024).
STRIP_MAX_N = 128


@_jit()
def rows_forward(src2, rows, from_src, buf, l, d):
    """Forward elimination along 4 contiguous rows at once (4 independent chains).

    Row ``r`` of the group is row ``rows[r]`` of ``src2 (L, n)`` (read when ``from_src``) and
    row ``r`` of ``buf (4, n)`` float64 (the result; the input when not ``from_src``).
    """
    n = buf.shape[1]
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
    if from_src:
        for i in range(min(d, n)):
            buf[0, i] = src2[r0, i]
            buf[1, i] = src2[r1, i]
            buf[2, i] = src2[r2, i]
            buf[3, i] = src2[r3, i]
    if d == 1:  # the chains' state stays in registers
        y0, y1, y2, y3 = buf[0, 0], buf[1, 0], buf[2, 0], buf[3, 0]
        if from_src:
            for i in range(1, n):
                li = l[i]
                y0 = src2[r0, i] - li * y0
                y1 = src2[r1, i] - li * y1
                y2 = src2[r2, i] - li * y2
                y3 = src2[r3, i] - li * y3
                buf[0, i] = y0
                buf[1, i] = y1
                buf[2, i] = y2
                buf[3, i] = y3
        else:
            for i in range(1, n):
                li = l[i]
                y0 = buf[0, i] - li * y0
                y1 = buf[1, i] - li * y1
                y2 = buf[2, i] - li * y2
                y3 = buf[3, i] - li * y3
                buf[0, i] = y0
                buf[1, i] = y1
                buf[2, i] = y2
                buf[3, i] = y3
    else:
        for i in range(d, n):
            li = l[i]
            if from_src:
                buf[0, i] = src2[r0, i] - li * buf[0, i - d]
                buf[1, i] = src2[r1, i] - li * buf[1, i - d]
                buf[2, i] = src2[r2, i] - li * buf[2, i - d]
                buf[3, i] = src2[r3, i] - li * buf[3, i - d]
            else:
                buf[0, i] -= li * buf[0, i - d]
                buf[1, i] -= li * buf[1, i - d]
                buf[2, i] -= li * buf[2, i - d]
                buf[3, i] -= li * buf[3, i - d]


@_jit()
def rows_backward(buf, dst2, rows, to_dst, pinv, sup, d, cols, M, lo, hi, zc):
    """Back substitution and Woodbury correction along the 4 rows of ``buf (4, n)``.

    With ``to_dst`` the results are then written to rows ``rows`` of ``dst2``.
    """
    n = buf.shape[1]
    nc = cols.shape[0]
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
    for i in range(n - 1, max(n - 1 - d, -1), -1):
        pi = pinv[i]
        buf[0, i] *= pi
        buf[1, i] *= pi
        buf[2, i] *= pi
        buf[3, i] *= pi
    if d == 1 and n > 1:
        y0, y1, y2, y3 = buf[0, n - 1], buf[1, n - 1], buf[2, n - 1], buf[3, n - 1]
        for i in range(n - 2, -1, -1):
            pi = pinv[i]
            y0 = (buf[0, i] - sup * y0) * pi
            y1 = (buf[1, i] - sup * y1) * pi
            y2 = (buf[2, i] - sup * y2) * pi
            y3 = (buf[3, i] - sup * y3) * pi
            buf[0, i] = y0
            buf[1, i] = y1
            buf[2, i] = y2
            buf[3, i] = y3
    else:
        for i in range(n - 1 - d, -1, -1):
            pi = pinv[i]
            buf[0, i] = (buf[0, i] - sup * buf[0, i + d]) * pi
            buf[1, i] = (buf[1, i] - sup * buf[1, i + d]) * pi
            buf[2, i] = (buf[2, i] - sup * buf[2, i + d]) * pi
            buf[3, i] = (buf[3, i] - sup * buf[3, i + d]) * pi
    if nc > 0:
        for j in range(nc):
            for r in range(4):
                zc[j, r] = buf[r, cols[j]]
        for j in range(nc):
            mj = M[j]
            for r in range(4):
                z = zc[j, r]
                br = buf[r]
                for i in range(lo):
                    br[i] -= mj[i] * z
                bt, mt = br[hi:], mj[hi:]
                for i in range(n - hi):
                    bt[i] -= mt[i] * z
    if to_dst:
        for i in range(n):
            dst2[r0, i] = buf[0, i]
            dst2[r1, i] = buf[1, i]
            dst2[r2, i] = buf[2, i]
            dst2[r3, i] = buf[3, i]


@_jit()
def solve_group(src2, dst2, rows, ops, c, d, rev, buf, zc):
    """Every factor of a line axis for the 4 rows ``rows`` of ``src2 (L, n)`` (channel ``c``),
    into the same rows of ``dst2``: 4 independent scalar recurrences in flight, in the float64
    scratch ``buf (4, n)``. A row may repeat (it is then computed twice, identically)."""
    l, pinv, sup, M, rng, cols = ops
    Q = l.shape[1]
    for qq in range(Q):
        q = Q - 1 - qq if rev else qq
        rows_forward(src2, rows, qq == 0, buf, l[c, q], d)
        rows_backward(
            buf,
            dst2,
            rows,
            qq == Q - 1,
            pinv[c, q],
            sup[c, q],
            d,
            cols,
            M[c, q],
            rng[c, q, 0],
            rng[c, q, 1],
            zc,
        )


@_jit()
def solve_last(src2, dst2, ops, c, d, rev, buf, zc):
    """Every factor of the last (contiguous) axis for the rows of ``src2 (L, n3)``, into ``dst2``.

    Rows go 4 at a time (:func:`solve_group`; the last group repeats the last row when L is
    not a multiple of 4).
    """
    L = src2.shape[0]
    rows = np.empty(4, np.int64)
    for a0 in range(0, L, 4):
        for r in range(4):
            rows[r] = min(a0 + r, L - 1)
        solve_group(src2, dst2, rows, ops, c, d, rev, buf, zc)


@_jit(parallel=True)
def solve_lines(t2, out2, C, d, rev, ops, nchunks, zrows):
    """1-D signals: ``out2[p] = A^{-1} t2[p]`` for the rows of ``t2 (P, n)``, channel ``p % C``.

    The rows of one channel (``c, c + C, c + 2 C, ...``) go 4 at a time through
    :func:`solve_group`, so that 4 different signals share the recurrences' latency.
    """
    P, n = t2.shape
    NB = P // C
    groups = (NB + 3) // 4
    items = C * groups
    per = (items + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        buf = np.empty((4, n))
        zc = np.empty((max(zrows, 1), 4))
        rows = np.empty(4, np.int64)
        for it in range(ch * per, min(items, (ch + 1) * per)):
            c = it % C
            g = it // C
            for r in range(4):
                rows[r] = c + C * min(4 * g + r, NB - 1)
            solve_group(t2, out2, rows, ops, c, d, rev, buf, zc)


@_jit()
def solve_block(src, dst, wk, st, zc, c, k, d, rev, ops0, ops1, ops2):
    """``dst = A^{-1} src`` for one channel block (``A^{-T}``: transposed ops and ``rev``).

    The outer axes first, in the float64 block ``wk`` (recurrences across rows, vectorised
    along them); then the last axis, ``STRIP`` rows at a time: transposed into the float64
    scratch ``st`` (at least ``STRIP * n3``), solved with the same vectorised recurrences,
    transposed into ``dst``. Measured on 64 x 64 planes, a transpose costs about 0.4 ns per
    element, a factor's forward and backward sweeps 0.35; four scalar recurrences in flight
    (:func:`solve_last`) cost about 1 ns per element and factor. Long last axes with one
    factor (``STRIP_MAX_N``) take :func:`solve_last`. ``k >= 2``: 1-D signals go through
    :func:`solve_lines`, which groups the rows of a channel.
    """
    n1, n2, n3 = dst.shape
    L = n1 * n2
    solve_axis(wk, ops1, c, d, rev, zc, src, True)
    if k >= 3:
        w0 = wk.reshape((1, n1, n2 * n3))
        solve_axis(w0, ops0, c, d, rev, zc, w0, False)
    w2 = wk.reshape((L, n3))
    d2 = dst.reshape((L, n3))
    if n3 > STRIP_MAX_N and ops2[0].shape[1] == 1:
        solve_last(w2, d2, ops2, c, d, rev, st[: 4 * n3].reshape((4, n3)), zc)
        return
    for a0 in range(0, L, STRIP):
        R = min(STRIP, L - a0)
        wt = st[: n3 * R].reshape((n3, R))
        for i in range(n3):  # strided reads, contiguous writes: the faster order
            for r in range(R):
                wt[i, r] = w2[a0 + r, i]
        w3 = wt.reshape((1, n3, R))
        solve_axis(w3, ops2, c, d, rev, zc, w3, False)
        for r in range(R):
            dr = d2[a0 + r]
            for i in range(n3):
                dr[i] = wt[i, r]


@_jit()
def scratch(n1, n2, n3, k, zrows):
    """Per-thread float64 scratch of :func:`solve_block`: ``st`` (the transposed strip, or the
    4 rows of :func:`solve_last`), ``wk`` (the block), ``zc`` (``z[cols]`` per lane); empty for
    1-D signals (``k == 1``), which :func:`solve_block` does not take."""
    st = np.empty((max(4, STRIP) if k > 1 else 0) * n3)
    wk = np.empty((n1, n2, n3) if k > 1 else (1, 1, 1))
    zc = np.empty((zrows, max(STRIP, n2 * n3)))
    return st, wk, zc


@_jit(parallel=True)
def solve_planes(t, out, C, k, d, rev, ops0, ops1, ops2, nchunks, zrows):
    """``out[p] = A^{-1} t[p]`` for every block of ``t (P, n1, n2, n3)``; channel ``p % C``;
    ``k >= 2`` (1-D signals: :func:`solve_lines`)."""
    P, n1, n2, n3 = t.shape
    per = (P + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        st, wk, zc = scratch(n1, n2, n3, k, zrows)
        for p in range(ch * per, min(P, (ch + 1) * per)):
            solve_block(t[p], out[p], wk, st, zc, p % C, k, d, rev, ops0, ops1, ops2)


# ---------------------------------------------------------------------------------------------
# the backward pass


@_jit()
def view(x, axis, k):
    """Block ``x (n1, n2, n3)`` as ``(A, n, R)``, the spatial axis ``axis`` (0..k-1) as ``n``."""
    n1, n2, n3 = x.shape
    b = axis + 3 - k
    if b == 2:
        return x.reshape((n1 * n2, n3, 1))
    if b == 1:
        return x.reshape((n1, n2, n3))
    return x.reshape((1, n1, n2 * n3))


@_jit()
def apply_rows(s2, d2, fm, f0, fp, sh, est, f, transposed):
    """``apply_factor`` along the contiguous rows of ``s2 (A, n)``: one pass over the flattened
    plane, then the first and last ``sh`` columns recomputed without the neighbouring rows,
    then the boundary entries. The fix-ups run down columns (one short loop per column, not
    per row and column: 4x cheaper on 64 x 64 planes)."""
    A, n = s2.shape
    N = A * n
    s1 = s2.reshape(N)
    d1 = d2.reshape(N)
    erow, ecol, etap = est
    if 2 * sh <= N:
        dm, sm, sp, sq = d1[sh : N - sh], s1[sh : N - sh], s1[2 * sh :], s1[: N - 2 * sh]
        for x in range(N - 2 * sh):
            dm[x] = f0 * sm[x] + fm * sp[x] + fp * sq[x]
    for i in range(min(sh, n)):
        if i + sh < n:
            for a in range(A):
                d2[a, i] = f0 * s2[a, i] + fm * s2[a, i + sh]
        else:
            for a in range(A):
                d2[a, i] = f0 * s2[a, i]
    for i in range(max(sh, n - sh), n):
        if i >= sh:
            for a in range(A):
                d2[a, i] = f0 * s2[a, i] + fp * s2[a, i - sh]
        else:
            for a in range(A):
                d2[a, i] = f0 * s2[a, i]
    for e in range(etap.shape[0]):
        val = f[etap[e]]
        i_to = ecol[e] if transposed else erow[e]
        i_from = erow[e] if transposed else ecol[e]
        for a in range(A):
            d2[a, i_to] += val * s2[a, i_from]


@_jit()
def dots_rows(v2, u2, sh, est, out3):
    """``shifted_dots`` along the contiguous rows of ``(A, n)`` planes: sums over the flattened
    plane, minus the pairs that straddle two rows, plus the boundary entries (column loops,
    as in :func:`apply_rows`)."""
    A, n = v2.shape
    N = A * n
    v1 = v2.reshape(N)
    u1 = u2.reshape(N)
    erow, ecol, etap = est
    acc0 = 0.0
    acc1 = 0.0
    acc2 = 0.0
    va, ua, ub, vb = v1[: N - sh], u1[: N - sh], u1[sh:], v1[sh:]
    for x in range(N - sh):
        vx = np.float64(va[x])
        ux = np.float64(ua[x])
        acc1 += vx * ux
        acc0 += vx * np.float64(ub[x])
        acc2 += np.float64(vb[x]) * ux
    vt, ut = v1[N - sh :], u1[N - sh :]
    for x in range(sh):
        acc1 += np.float64(vt[x]) * np.float64(ut[x])
    if A > 1:
        # (row a, column i) with (row a + 1, column i + sh - n), for i in [n - sh, n)
        for i in range(max(n - sh, 0), n):
            for a in range(A - 1):
                x = a * n + i
                acc0 -= np.float64(va[x]) * np.float64(ub[x])
                acc2 -= np.float64(vb[x]) * np.float64(ua[x])
    for e in range(etap.shape[0]):
        acc = 0.0
        r_, c_ = erow[e], ecol[e]
        for a in range(A):
            acc += np.float64(v2[a, r_]) * np.float64(u2[a, c_])
        if etap[e] == 0:
            acc0 += acc
        else:
            acc2 += acc
    out3[0] -= acc0
    out3[1] -= acc1
    out3[2] -= acc2


@_jit()
def apply_factor(src, dst, axis, k, f, d, est, transposed):
    """``dst = A_f src`` (``A_f^T src`` when transposed) along spatial ``axis`` of blocks.

    Hot loops index with the loop counter only (shifted operands are slices), so that numba
    emits no negative-index checks and the loops vectorise.
    """
    s3 = view(src, axis, k)
    d3 = view(dst, axis, k)
    A, n, R = s3.shape
    erow, ecol, etap = est
    f0 = f[1]
    fm = f[2] if transposed else f[0]  # T^T is T with f_-1 and f_1 swapped
    fp = f[0] if transposed else f[2]
    N = n * R
    sh = min(d, n) * R
    if R == 1 and A > 1:
        apply_rows(s3.reshape((A, n)), d3.reshape((A, n)), fm, f0, fp, min(d, n), est, f, transposed)
        return
    for a in range(A):
        s1 = s3[a].reshape(N)
        d1 = d3[a].reshape(N)
        if 2 * sh <= N:
            # rows with both neighbours, then the first and last d rows
            dm, sm, sp, sq = d1[sh : N - sh], s1[sh : N - sh], s1[2 * sh :], s1[: N - 2 * sh]
            for x in range(N - 2 * sh):
                dm[x] = f0 * sm[x] + fm * sp[x] + fp * sq[x]
            dh, sh0, sh1 = d1[:sh], s1[:sh], s1[sh : 2 * sh]
            for x in range(sh):
                dh[x] = f0 * sh0[x] + fm * sh1[x]
            dt, st0, st1 = d1[N - sh :], s1[N - sh :], s1[N - 2 * sh : N - sh]
            for x in range(sh):
                dt[x] = f0 * st0[x] + fp * st1[x]
        else:
            for x in range(N):
                v = f0 * s1[x]
                if x + sh < N:
                    v += fm * s1[x + sh]
                if x >= sh:
                    v += fp * s1[x - sh]
                d1[x] = v
        for e in range(etap.shape[0]):
            val = f[etap[e]]  # E^T keeps each entry's tap and swaps its row and column
            i_to = ecol[e] if transposed else erow[e]
            i_from = erow[e] if transposed else ecol[e]
            dr = d1[i_to * R : i_to * R + R]
            sr = s1[i_from * R : i_from * R + R]
            for r in range(R):
                dr[r] += val * sr[r]


@_jit()
def shifted_dots(v, u, axis, k, d, est, out3):
    """``out3 -= (<v, S_{+d} u>, <v, u>, <v, S_{-d} u>)`` along ``axis``, boundary shifts."""
    v3 = view(v, axis, k)
    u3 = view(u, axis, k)
    A, n, R = v3.shape
    erow, ecol, etap = est
    N = n * R
    sh = min(d, n) * R
    if R == 1 and A > 1:
        dots_rows(v3.reshape((A, n)), u3.reshape((A, n)), min(d, n), est, out3)
        return
    acc0 = 0.0
    acc1 = 0.0
    acc2 = 0.0
    for a in range(A):
        v1 = v3[a].reshape(N)
        u1 = u3[a].reshape(N)
        va, ua, ub, vb = v1[: N - sh], u1[: N - sh], u1[sh:], v1[sh:]
        for x in range(N - sh):
            vx = np.float64(va[x])
            ux = np.float64(ua[x])
            acc1 += vx * ux
            acc0 += vx * np.float64(ub[x])
            acc2 += np.float64(vb[x]) * ux
        vt, ut = v1[N - sh :], u1[N - sh :]
        for x in range(sh):
            acc1 += np.float64(vt[x]) * np.float64(ut[x])
        for e in range(etap.shape[0]):
            acc = 0.0
            vr = v1[erow[e] * R : erow[e] * R + R]
            ur = u1[ecol[e] * R : ecol[e] * R + R]
            for r in range(R):
                acc += np.float64(vr[r]) * np.float64(ur[r])
            if etap[e] == 0:
                acc0 += acc
            else:
                acc2 += acc
    out3[0] -= acc0
    out3[1] -= acc1
    out3[2] -= acc2


@_jit()
def pick(right, bufs, i):
    return right if i < 0 else bufs[i]


@_jit()
def taps_sums(left, right, c, k, taps, d, est0, est1, est2, bufs, part):
    """``part (k, Q, 3) += taps_vjp(left, right)`` for one block (``arma_core.solve.taps_vjp``).

    ``bufs (3 + Q, n1, n2, n3)``: 0/1 hold ``z = B_j right`` (the other axes' operators),
    2/3 ``v_q = (A_j^(1..q-1))^T left``, ``4 + q`` ``u_q = A_j^(q+1..Q) z``.
    """
    Q = taps.shape[2]
    for j in range(k):
        bj = j + 3 - k
        est = est2 if bj == 2 else (est1 if bj == 1 else est0)
        zi = -1
        for o in range(k):
            if o == j:
                continue
            bo = o + 3 - k
            esto = est2 if bo == 2 else (est1 if bo == 1 else est0)
            for qq in range(Q):
                q = Q - 1 - qq
                dst = 1 if zi == 0 else 0
                apply_factor(pick(right, bufs, zi), bufs[dst], o, k, taps[c, o, q], d, esto, False)
                zi = dst
        for q in range(Q - 2, -1, -1):
            src = zi if q == Q - 2 else 4 + q + 1
            apply_factor(pick(right, bufs, src), bufs[4 + q], j, k, taps[c, j, q + 1], d, est, False)
        vi = -1
        for q in range(Q):
            ui = zi if q == Q - 1 else 4 + q
            vq = pick(left, bufs, vi)
            shifted_dots(vq, pick(right, bufs, ui), j, k, d, est, part[j, q])
            if q + 1 < Q:
                dst = 3 if vi == 2 else 2
                apply_factor(vq, bufs[dst], j, k, taps[c, j, q], d, est, True)
                vi = dst


@_jit(parallel=True)
def vjp_planes(
    y,
    g,
    w,
    part,
    C,
    k,
    d,
    rev,
    adjoint,
    ops0,
    ops1,
    ops2,
    nchunks,
    zrows,
    taps,
    est0,
    est1,
    est2,
    need_taps,
    solved,
):
    """Per block: ``w = A^{-T} g`` (``A^{-1} g`` for the adjoint solve: ops and ``rev`` say
    which; skipped when ``solved``, ``w`` then given, as it must be for ``k == 1``) and
    ``part[p] = taps_vjp`` of the block (the caller sums over the batch)."""
    P, n1, n2, n3 = g.shape
    Q = taps.shape[2]
    per = (P + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        st, wk, zc = scratch(n1, n2, n3, k, zrows)
        bufs = np.empty((3 + Q, n1, n2, n3), g.dtype)
        for p in range(ch * per, min(P, (ch + 1) * per)):
            c = p % C
            if not solved:
                solve_block(g[p], w[p], wk, st, zc, c, k, d, rev, ops0, ops1, ops2)
            if need_taps:
                if adjoint:
                    taps_sums(y[p], w[p], c, k, taps, d, est0, est1, est2, bufs, part[p])
                else:
                    taps_sums(w[p], y[p], c, k, taps, d, est0, est1, est2, bufs, part[p])
